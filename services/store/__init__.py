"""Persistence for ReleaseGate: the tamper-evident ledger, evidence and the use-case registry,
and the reads over them (the evidence pack, flow metrics' entries). Routes and activities
call these repositories; they build no SQL of their own.

Schema changes go through Alembic (``migrations/``); application code never calls ``create_all``.
"""
