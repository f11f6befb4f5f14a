"""Publishing signed checkpoints to the sinks outside the ledger database, and the timer that
signs one when entries have waited ``RELEASEGATE_CHECKPOINT_SECONDS``.

Publishing runs after the signing transaction committed. It never fails the ledger write that
made the checkpoint due (the entries are already committed; a retry would append nothing and
publish nothing): a sink that fails is logged and counted, and the next checkpoint writes the
missing predecessor from the database copy, so the directory stays a linked chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.settings import Settings
from services.store.db import session_scope
from services.store.models import LedgerCheckpoint
from services.store.transparency import TransparencyLogRepository
from services.tlog import keys as checkpoint_keys
from services.tlog.auditor import Checkpoint, parse_note
from services.tlog.checkpoints import (
    CheckpointPolicy,
    DirectorySink,
    SignedCheckpoint,
    WitnessClient,
    WitnessRefused,
)
from services.tlog.merkle import Tree

log = logging.getLogger("releasegate.tlog")


class Publisher:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        sink: DirectorySink,
        witness: WitnessClient | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.sink = sink
        self.witness = witness
        # one at a time: the witness takes checkpoints in order of size
        self._lock = asyncio.Lock()
        # the tree read so far, extended with each publish (measured: reading and hashing every
        # leaf per checkpoint cost more than signing it; bench/ledger_checkpoints.py)
        self._tree = Tree([])

    async def publish(self, signed: SignedCheckpoint) -> None:
        async with self._lock:
            try:
                await self._publish(signed)
            except Exception:  # a sink's failure must never fail the ledger write
                log.exception("checkpoint of size %d not published", signed.size)

    async def _publish(self, signed: SignedCheckpoint) -> None:
        async with session_scope(self._sessionmaker) as session:
            repo = TransparencyLogRepository(session)
            if self._tree.size < signed.size:
                self._tree.extend(await repo.leaves_between(self._tree.size, signed.size))
            await self._catch_up(session, signed)
        # a checkpoint published after a larger one (concurrent appends) gets its own tree
        tree = (
            self._tree
            if self._tree.size == signed.size
            else Tree(self._tree.levels[0][: signed.size])
        )
        if tree.root != signed.checkpoint.root:
            log.critical(
                "the stored leaves no longer give the root signed at size %d: the log's "
                "tables were changed after signing",
                signed.size,
            )
        proof = tree.consistency_proof(signed.old_size) if signed.old_size else []
        note = signed.note
        if self.witness is not None:
            note = await self._cosign(signed, note, tree)
        self.sink.write(signed, note, proof)

    async def _cosign(self, signed: SignedCheckpoint, note: str, tree: Tree) -> str:
        assert self.witness is not None
        for _ in range(2):  # a 409 tells the size the witness holds; one retry from there
            old = self.witness.known_size
            if old is None:
                old = signed.old_size or 0
            if old > signed.size:
                break
            try:
                cosigned = await self.witness.add_checkpoint(
                    note, old, tree.consistency_proof(old) if old else []
                )
            except WitnessRefused as exc:
                log.warning("witness refused checkpoint %d: %s", signed.size, exc)
                continue
            except httpx.HTTPError as exc:
                log.error("witness unreachable for checkpoint %d: %s", signed.size, exc)
                break
            async with session_scope(self._sessionmaker) as session:
                await session.execute(
                    update(LedgerCheckpoint)
                    .where(
                        LedgerCheckpoint.size == signed.size,
                        LedgerCheckpoint.root == signed.checkpoint.root.hex(),
                    )
                    .values(note=cosigned)
                )
            return cosigned
        log.error("checkpoint %d published without a witness cosignature", signed.size)
        return note

    async def _catch_up(self, session: AsyncSession, signed: SignedCheckpoint) -> None:
        """Write the predecessor from its database copy when the directory lacks it."""
        if signed.old_size is None or signed.old_root is None:
            return
        if self.sink.has(signed.old_size):
            return
        repo = TransparencyLogRepository(session)
        row = await repo.checkpoint(signed.old_size, signed.old_root)
        if row is None:
            return
        previous = SignedCheckpoint(
            Checkpoint.parse(parse_note(row.note).text), row.note, row.old_size, None
        )
        proof = (await repo.tree(row.size)).consistency_proof(row.old_size) if row.old_size else []
        self.sink.write(previous, row.note, proof)
        log.warning("checkpoint %d was missing from %s; written now", row.size, self.sink.directory)


@dataclass(frozen=True)
class Checkpointing:
    """What a worker needs to sign and publish checkpoints."""

    policy: CheckpointPolicy
    publisher: Publisher

    async def sign_if_due(self) -> SignedCheckpoint | None:
        async with session_scope(self.publisher._sessionmaker) as session:
            signed = await TransparencyLogRepository(session).checkpoint_if_due(self.policy)
        if signed is not None:
            await self.publisher.publish(signed)
        return signed

    async def run_timer(self, stop: asyncio.Event) -> None:
        """Sign a checkpoint when entries have waited ``policy.seconds`` (the append path
        covers the other cadences)."""
        interval = max(0.05, min(self.policy.seconds, 5.0))
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return
            try:
                await self.sign_if_due()
            except Exception:
                log.exception("timed checkpoint failed; trying again in %.1fs", interval)


def checkpointing(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
) -> Checkpointing | None:
    """The worker's checkpointing from settings (None when ``RELEASEGATE_CHECKPOINTS`` is off).
    Raises ``ConfigError`` for a missing or unusable key file."""
    if not settings.checkpoints_enabled:
        return None
    keys = checkpoint_keys.for_process(settings)
    if keys.signer is None:
        from services.settings import ConfigError

        raise ConfigError(
            f"{checkpoint_keys.VARIABLE}={settings.checkpoint_keys_path}: the worker signs "
            "checkpoints and needs the signing key"
        )
    witness = None
    if settings.checkpoint_witness_url and settings.checkpoint_witness_key:
        witness = WitnessClient(
            http, settings.checkpoint_witness_url, settings.checkpoint_witness_key
        )
    policy = CheckpointPolicy(
        keys.signer, every=settings.checkpoint_every, seconds=settings.checkpoint_seconds
    )
    return Checkpointing(
        policy, Publisher(sessionmaker, DirectorySink(settings.checkpoint_dir_path), witness)
    )
