"""Deterministic Temporal code: payload models, pure policy rules and the UseCaseRelease workflow."""
