"""Deterministic Temporal code: payload models, policy rules and the UseCaseRelease workflow."""
