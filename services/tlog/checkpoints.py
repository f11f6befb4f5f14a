"""Checkpoints: when one is due, what it says, and the sinks outside the ledger database.

A checkpoint is a C2SP tlog-checkpoint (origin, tree size, base64 root) plus our run-heads
extension line, signed as a C2SP signed note by the worker's Ed25519 key. It is signed in the
append transaction that makes it due (under the log lock, so the tree it names is exactly the
committed one) and published after that transaction commits — never before: a checkpoint of a
tree that then rolled back would look like a forked history.

Sinks: the directory (``RELEASEGATE_CHECKPOINT_DIR``: ``<size>.note`` and
``<size>.consistency``, the proof from the previous checkpoint, so the directory verifies by
itself) and an optional C2SP tlog-witness (``RELEASEGATE_CHECKPOINT_WITNESS_URL``), whose
cosignature is added to the note before it is written.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from services.tlog.auditor import (
    ALG_COSIGNATURE_V1,
    Checkpoint,
    NoteError,
    Verifier,
    open_note,
    parse_note,
    witness_cosignatures,
)
from services.tlog.note import NoteSigner, add_signatures

log = logging.getLogger("releasegate.tlog")

NOTE_SUFFIX = ".note"
CONSISTENCY_SUFFIX = ".consistency"
# Gate decisions that make a high-tier run's checkpoint due at once
HIGH_TIER = "high"


@dataclass(frozen=True)
class CheckpointPolicy:
    """Who signs, and how often: every ``every`` entries or ``seconds`` after the last
    checkpoint (if the log grew), and at every gate decision of a high-tier run."""

    signer: NoteSigner
    every: int = 256
    seconds: float = 30.0

    @property
    def origin(self) -> str:
        return self.signer.name

    def due(
        self,
        *,
        size: int,
        last_size: int | None,
        last_at: datetime | None,
        now: datetime,
        decision_of_high_tier: bool = False,
    ) -> bool:
        if size == 0 or size == last_size:
            return False
        if last_size is None or last_at is None or decision_of_high_tier:
            return True
        return size - last_size >= self.every or now - last_at >= timedelta(seconds=self.seconds)


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: str
    # the checkpoint it extends (None: the first one)
    old_size: int | None
    old_root: bytes | None

    @property
    def size(self) -> int:
        return self.checkpoint.size


def sign(
    policy: CheckpointPolicy,
    *,
    size: int,
    root: bytes,
    heads_count: int,
    heads_root: bytes,
    old_size: int | None,
    old_root: bytes | None,
) -> SignedCheckpoint:
    checkpoint = Checkpoint(policy.origin, size, root, heads_count, heads_root)
    return SignedCheckpoint(checkpoint, policy.signer.sign(checkpoint.body()), old_size, old_root)


def _file_stem(size: int) -> str:
    return f"{size:020d}"


def _atomic_write(path: Path, text: str) -> None:
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(aside, 0o644)
        os.replace(aside, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(aside)
        raise


def consistency_text(old_size: int, proof: Sequence[bytes]) -> str:
    """The tlog-witness request's head: ``old <size>`` and one base64 hash per line."""
    return f"old {old_size}\n" + "".join(base64.b64encode(p).decode() + "\n" for p in proof)


class DirectorySink:
    """Checkpoints as files: ``<size>.note`` (the signed, possibly cosigned note) and
    ``<size>.consistency`` (proof from the previous checkpoint). A file is never overwritten
    by a different tree of the same size: that would be a fork, kept beside it as evidence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, signed: SignedCheckpoint, note: str, proof: Sequence[bytes]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = _file_stem(signed.size)
        path = self.directory / f"{stem}{NOTE_SUFFIX}"
        if path.exists():
            existing = Checkpoint.parse(parse_note(path.read_text(encoding="utf-8")).text)
            if existing.root != signed.checkpoint.root:
                log.critical(
                    "FORK: a checkpoint of size %d with another root is already in %s; kept both",
                    signed.size,
                    self.directory,
                )
                stem = f"{stem}.{signed.checkpoint.root.hex()[:16]}"
                path = self.directory / f"{stem}{NOTE_SUFFIX}"
        if signed.old_size is not None:
            _atomic_write(
                self.directory / f"{stem}{CONSISTENCY_SUFFIX}",
                consistency_text(signed.old_size, proof),
            )
        _atomic_write(path, note)
        return path

    def has(self, size: int) -> bool:
        return (self.directory / f"{_file_stem(size)}{NOTE_SUFFIX}").exists()

    def notes(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        texts = []
        for path in sorted(self.directory.glob(f"*{NOTE_SUFFIX}")):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                texts.append(path.read_text(encoding="utf-8"))
        return texts

    def consistency(self, size: int) -> tuple[int, list[bytes]] | None:
        path = self.directory / f"{_file_stem(size)}{CONSISTENCY_SUFFIX}"
        try:
            lines = [line for line in path.read_text().split("\n") if line]
        except OSError:
            return None
        return int(lines[0].removeprefix("old ")), [base64.b64decode(x) for x in lines[1:]]


class WitnessRefused(RuntimeError):
    pass


class WitnessClient:
    """A C2SP tlog-witness: ``POST <url>/add-checkpoint`` with the old size, the consistency
    proof from it and the signed checkpoint; the answer is the witness's cosignature lines.
    On 409 the witness names the size it last cosigned, and the caller retries from there."""

    def __init__(self, http: httpx.AsyncClient, url: str, witness_vkey: str) -> None:
        self.http = http
        self.url = url.rstrip("/") + "/add-checkpoint"
        self.witness = Verifier.parse(witness_vkey)
        if self.witness.alg != ALG_COSIGNATURE_V1:
            raise ValueError("the witness key must be a cosignature/v1 (type 0x04) vkey")
        self.known_size: int | None = None

    async def add_checkpoint(self, note: str, old_size: int, proof: Sequence[bytes]) -> str:
        body = consistency_text(old_size, proof) + "\n" + note
        response = await self.http.post(
            self.url, content=body.encode(), headers={"Content-Type": "text/plain"}
        )
        if response.status_code == 409 and response.headers.get("content-type", "").startswith(
            "text/x.tlog.size"
        ):
            self.known_size = int(response.text.strip())
            raise WitnessRefused(f"witness holds size {self.known_size}, not {old_size}")
        if response.status_code != 200:
            raise WitnessRefused(f"witness answered {response.status_code}: {response.text[:200]}")
        cosigned = add_signatures(note, response.text)
        if not witness_cosignatures(parse_note(cosigned), [self.witness]):
            raise WitnessRefused("the witness's answer holds no valid cosignature")
        self.known_size = Checkpoint.parse(parse_note(note).text).size
        return cosigned


def latest_note(notes: Sequence[str], keys: Sequence[Verifier]) -> tuple[Checkpoint, str] | None:
    """The largest checkpoint among ``notes`` that a trusted key signed."""
    best: tuple[Checkpoint, str] | None = None
    for text in notes:
        try:
            note, _ = open_note(text, keys)
            checkpoint = Checkpoint.parse(note.text)
        except NoteError:
            continue
        if best is None or checkpoint.size > best[0].size:
            best = (checkpoint, text)
    return best
