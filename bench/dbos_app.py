"""The governed path as a DBOS application on PostgreSQL, for ``bench/dbos_path.py``.

Each of the path's 8 calls is one DBOS workflow (its id derived from the use case and the
call, so a repeated call is the same workflow) with one step: a transaction that checks the
call is the next step of the path and by whom, moves the use case on, appends a hash-chained
ledger entry (and the evidence it brings) and answers the state. That is what ReleaseGate
does per command (validate, record in a tamper-evident ledger, update the read model, answer
the state), minus its policy engine, notifications, timers and signed commands.

Imported only when ``dbos`` is installed (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dbos import DBOS
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

SCHEMA = "rg_app"
GENESIS = "0" * 64
PATH = (
    "scoping",
    "specification",
    "implementation",
    "validation",
    "risk_signoff",
    "ops_handoff",
    "go_live",
    "live",
)
DECIDERS = {
    "create": "dana",
    "scoping": "dana",
    "specification": "dana",
    "implementation": "dana",
    "validation": "dana",
    "risk_signoff": "rita",
    "ops_handoff": "olga",
    "go_live": "bo",
}
DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.use_cases (
        key text PRIMARY KEY, stage text NOT NULL, seq int NOT NULL, head text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now())""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.ledger (
        key text NOT NULL, seq int NOT NULL, kind text NOT NULL, actor text NOT NULL,
        payload jsonb NOT NULL, prev_hash text NOT NULL, hash text NOT NULL,
        at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (key, seq))""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.evidence (
        key text NOT NULL, seq int NOT NULL, sha256 text NOT NULL,
        PRIMARY KEY (key, seq, sha256))""",
)

_engine: AsyncEngine | None = None


def configure(engine: AsyncEngine) -> None:
    """The application database the step writes to (the benchmark's own database)."""
    global _engine
    _engine = engine


class Refused(Exception):
    """The call is not the next step of the path, or not by whom it must be."""


def _hash(prev: str, entry: dict[str, Any]) -> str:
    document = json.dumps({**entry, "prev_hash": prev}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(document.encode()).hexdigest()


@DBOS.step()
async def apply(key: str, step: str, actor: str, evidence: list[str]) -> dict[str, Any]:
    """One call of the path in one transaction: check, move on, append to the ledger."""
    assert _engine is not None, "configure() first"
    if DECIDERS.get(step) != actor:
        raise Refused(f"{actor} may not take {step}")
    async with _engine.begin() as conn:
        if step == "create":
            seq, prev, stage = 0, GENESIS, PATH[0]
        else:
            row = (
                await conn.execute(
                    text(
                        f"SELECT stage, seq, head FROM {SCHEMA}.use_cases WHERE key = :k FOR UPDATE"
                    ),
                    {"k": key},
                )
            ).one()
            if row.stage != step:
                raise Refused(f"{step} is not open ({key} is at {row.stage})")
            seq, prev, stage = row.seq, row.head, PATH[PATH.index(step) + 1]
        entry = {"key": key, "seq": seq + 1, "kind": step, "actor": actor, "evidence": evidence}
        digest = _hash(prev, entry)
        await conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.ledger (key, seq, kind, actor, payload, prev_hash, hash) "
                "VALUES (:k, :s, :kind, :a, CAST(:p AS jsonb), :prev, :h)"
            ),
            {
                "k": key,
                "s": seq + 1,
                "kind": step,
                "a": actor,
                "p": json.dumps(entry),
                "prev": prev,
                "h": digest,
            },
        )
        for sha in evidence:
            await conn.execute(
                text(f"INSERT INTO {SCHEMA}.evidence (key, seq, sha256) VALUES (:k, :s, :h)"),
                {"k": key, "s": seq + 1, "h": sha},
            )
        await conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.use_cases (key, stage, seq, head) VALUES (:k, :st, :s, :h) "
                "ON CONFLICT (key) DO UPDATE SET stage = :st, seq = :s, head = :h, "
                "updated_at = now()"
            ),
            {"k": key, "st": stage, "s": seq + 1, "h": digest},
        )
    return {"key": key, "stage": stage, "facts": seq + 1, "head": digest}


@DBOS.workflow()
async def command(key: str, step: str, actor: str, evidence: list[str]) -> dict[str, Any]:
    return await apply(key, step, actor, evidence)
