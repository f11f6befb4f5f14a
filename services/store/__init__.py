"""Persistence for ReleaseGate: the tamper-evident ledger, evidence and the use-case registry.

Schema changes go through Alembic (``migrations/``); application code never calls ``create_all``.
"""
