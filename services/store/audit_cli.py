"""The auditor's command line, straight against the ledger database (no API, no Temporal).

    python -m services.store.audit_cli verify [--use-case KEY]
    python -m services.store.audit_cli export --use-case KEY --out FILE
    python -m services.store.audit_cli verify-pack PACK.json --checkpoints DIR --key KEYS

``verify`` recomputes the hash chain of one use case, or of every use case in the ledger and
the registry, holds each chain to the run's own event count (its registry row), and prints one
line per chain; a run whose ledger the store refused for good is reported as blocked.
``export`` writes the evidence pack, the same document as
``GET /v1/use-cases/{id}/evidence-pack``, with inclusion proofs against the newest signed
checkpoint (the database's copies and ``RELEASEGATE_CHECKPOINT_DIR``). ``verify-pack`` needs
no database at all: it checks a pack against signed checkpoints and the log's public keys
(``services.tlog.auditor``). The database is ``RELEASEGATE_DATABASE_URL`` (or the settings'
default) unless ``--database-url`` says otherwise.

Exit status: 0 every chain verified, 1 a chain is broken or blocked (export still writes the
pack), 2 the use case is unknown, the database is unreachable or the configuration is bad.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from services.settings import ConfigError, Settings, load_settings
from services.store.audit import (
    CheckpointSource,
    UnknownUseCase,
    build_evidence_pack,
    verify_use_case,
)
from services.store.blocked import BlockedRepository
from services.store.db import is_sqlite, make_engine, make_sessionmaker
from services.store.ledger import LedgerRepository, VerifyResult
from services.store.models import LedgerBlock
from services.tlog import auditor
from services.tlog import keys as checkpoint_keys
from workflows.ids import use_case_workflow_id

EXIT_OK = 0
EXIT_BROKEN = 1
EXIT_ERROR = 2


def _missing_sqlite_file(url: str) -> str | None:
    """The path of a file-backed SQLite URL whose file does not exist (opening it would
    silently create an empty database, which is no ledger to audit)."""
    if not is_sqlite(url):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or "mode=memory" in url:
        return None
    path = Path(database).expanduser()
    return None if path.exists() else str(path)


def _line(workflow_id: str, result: VerifyResult) -> str:
    if result.ok:
        return f"{workflow_id}: ok ({result.entries} entries)"
    expected = "" if result.expected_entries is None else f" of {result.expected_entries}"
    return (
        f"{workflow_id}: BROKEN at seq {result.first_bad_seq} ({result.reason}); "
        f"{result.entries}{expected} entries"
    )


def _blocked_line(block: LedgerBlock) -> str:
    return (
        f"{block.workflow_id}: BLOCKED before event {block.event_id} since "
        f"{block.blocked_at.isoformat()} ({block.reason}: {block.detail})"
    )


async def _verify(url: str, use_case: str | None, out: TextIO) -> int:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            blocks = await BlockedRepository(session).all()
            if use_case is not None:
                workflow_id = use_case_workflow_id(use_case)
                blocks = [b for b in blocks if b.workflow_id == workflow_id]
                results = (
                    {} if blocks else {workflow_id: await verify_use_case(session, workflow_id)}
                )
            else:
                results = await LedgerRepository(session).verify_all()
    finally:
        await engine.dispose()
    blocked = {b.workflow_id for b in blocks}
    for workflow_id, result in results.items():
        if workflow_id not in blocked:
            out.write(_line(workflow_id, result) + "\n")
    for block in blocks:
        out.write(_blocked_line(block) + "\n")
    broken = [wf for wf, result in results.items() if not result.ok and wf not in blocked]
    if use_case is None:
        out.write(f"{len(results)} chains verified, {len(broken)} broken, {len(blocked)} blocked\n")
    return EXIT_BROKEN if broken or blocked else EXIT_OK


def _checkpoint_source(settings: Settings) -> CheckpointSource:
    """Checkpoints signed by the configured keys (never creates a key file: an auditor's
    export must not mint keys), else every stored checkpoint (the pack's verifier checks
    signatures anyway)."""
    path = settings.checkpoint_keys_path
    try:
        verifiers = checkpoint_keys.load(path).verifiers if path.exists() else []
    except ConfigError:
        verifiers = []
    return CheckpointSource(keys=verifiers, directory=settings.checkpoint_dir_path)


async def _export(
    url: str, use_case: str, target: str, settings: Settings, out: TextIO, err: TextIO
) -> int:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            pack = await build_evidence_pack(
                session,
                use_case,
                policy_path=settings.policy_path,
                checkpoints=_checkpoint_source(settings),
            )
    finally:
        await engine.dispose()
    document = pack.model_dump_json(indent=2) + "\n"
    if target == "-":
        out.write(document)
    else:
        Path(target).write_text(document, encoding="utf-8")
    verify = pack.ledger.verify
    summary = (
        f"{pack.use_case.id}: {pack.ledger.entries} ledger entries, {len(pack.decisions)} "
        f"decisions, {len(pack.evidence)} evidence items; chain "
        + ("ok" if verify.ok else f"BROKEN at seq {verify.first_bad_seq} ({verify.reason})")
    )
    # with --out - the pack owns stdout; the summary goes to stderr
    (err if target == "-" else out).write(
        summary + ("" if target == "-" else f"; written to {target}") + "\n"
    )
    return EXIT_OK if verify.ok else EXIT_BROKEN


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m services.store.audit_cli",
        description="Verify and export the ReleaseGate ledger, straight from its database.",
    )
    root.add_argument(
        "--database-url",
        help="ledger database URL (default: RELEASEGATE_DATABASE_URL or the settings' default)",
    )
    commands = root.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="recompute hash chains; exit 1 if any is broken")
    verify.add_argument("--use-case", metavar="KEY", help="use case key or id (default: all)")
    export = commands.add_parser("export", help="write a use case's evidence pack as JSON")
    export.add_argument("--use-case", metavar="KEY", required=True, help="use case key or id")
    export.add_argument("--out", metavar="FILE", required=True, help="output file ('-': stdout)")
    offline = commands.add_parser(
        "verify-pack", help="verify an evidence pack offline (no database); exit 1 if it fails"
    )
    offline.add_argument("pack", metavar="PACK.json")
    offline.add_argument("--checkpoints", action="append", default=[], metavar="DIR")
    offline.add_argument("--key", action="append", required=True, metavar="VKEY|FILE")
    offline.add_argument("--witness", action="append", default=[], metavar="VKEY|FILE")
    return root


def _verify_pack(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        pack = json.loads(Path(args.pack).read_text(encoding="utf-8"))
        keys, witnesses = auditor.load_keys(args.key), auditor.load_keys(args.witness)
    except (OSError, ValueError, KeyError) as exc:
        err.write(f"error: {exc}\n")
        return EXIT_ERROR
    report = auditor.verify_pack(pack, keys, [Path(d) for d in args.checkpoints], witnesses)
    out.write(auditor.render(report, (pack.get("use_case") or {}).get("id", "?")))
    return EXIT_OK if report.ok else EXIT_BROKEN


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    args = parser().parse_args(argv)
    if args.command == "verify-pack":  # offline: no settings, no database
        return _verify_pack(args, out, err)
    try:
        settings = settings or load_settings()
    except ConfigError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_ERROR
    url = args.database_url or settings.resolved_database_url
    if (missing := _missing_sqlite_file(url)) is not None:
        err.write(f"error: no ledger database at {missing}\n")
        return EXIT_ERROR
    try:
        if args.command == "verify":
            return asyncio.run(_verify(url, args.use_case, out))
        return asyncio.run(_export(url, args.use_case, args.out, settings, out, err))
    except UnknownUseCase as exc:
        err.write(f"error: {exc}\n")
    except (OperationalError, DBAPIError, OSError) as exc:
        # unreachable server, missing file, schema not migrated, unwritable --out …
        reason = getattr(exc, "orig", None) or exc
        err.write(f"error: {exc.__class__.__name__}: {reason}\n")
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
