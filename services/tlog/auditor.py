#!/usr/bin/env python3
"""Verify a ReleaseGate evidence pack offline: no server, no database, only Python and
``cryptography``. This file is self-contained on purpose: an auditor can copy it alone.

    python auditor.py PACK.json --checkpoints DIR --key KEYS

``KEYS`` is a vkey (``<origin>+<key id hex>+<base64 public key>``), a file of vkeys one per
line, or the JSON of ``GET /v1/ledger/keys``; give ``--key`` more than once after a rotation.
``DIR`` holds the signed checkpoints the log published (``<size>.note``, each with the
consistency proof from the checkpoint before it in ``<size>.consistency``); give it more than
once to pool what several auditors were shown.

What is checked, in order (the first failure is named; exit 1):

1. every checkpoint in DIR and the pack's own is signed by a trusted key;
2. no two checkpoints of one size differ (a forked history), and each checkpoint is consistent
   with the one before it (RFC 9162 consistency proofs): the log only ever grew;
3. the pack's checkpoint is one of DIR's, or linked to DIR's newest by its consistency proof;
4. the chain: each entry's hash recomputes from its content and links to the previous one;
5. each entry is in the signed tree: its leaf (RFC 6962, from the entry hash) has an inclusion
   proof to the checkpoint's root; a leaf the log holds for the run but the pack lacks is a
   deleted entry;
6. the run is complete: the checkpoint commits to every run's newest entry (the ``run-heads``
   extension line, a second Merkle tree); the pack's chain must end exactly there;
7. the pack's facts (owners, stage, decisions, evidence) are the chained entries' own.

Exit status: 0 verified, 1 a check failed, 2 unreadable input.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# --------------------------------------------------------------------------- RFC 6962 / 9162

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def entry_leaf_hash(entry_hash_hex: str) -> bytes:
    """The log's leaf for a ledger entry: its entry hash (32 bytes) as the leaf data. The entry
    hash covers the workflow id, the seq and the whole content, so the leaf names them all."""
    return leaf_hash(bytes.fromhex(entry_hash_hex))


def _lsb(n: int) -> int:
    return n & 1


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if index < 0 or index >= size or any(len(p) != 32 for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if _lsb(fn) or fn == sn:
            r = node_hash(p, r)
            while not _lsb(fn) and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2 (with the trivial cases: equal sizes, an empty first tree)."""
    if first < 0 or first > second or any(len(p) != 32 for p in proof):
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    path = list(proof)
    if not path:
        return False
    if first & (first - 1) == 0:  # an exact power of 2: the old root is a node of the new tree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while _lsb(fn):
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if _lsb(fn) or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not _lsb(fn) and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


# --------------------------------------------------------------------------- signed notes

SIGNATURE_PREFIX = "\u2014 "  # em dash and a space
ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
MAX_SIGNATURES = 100


class NoteError(ValueError):
    """A note, vkey or checkpoint that is malformed or not signed by a trusted key."""


def key_id(name: str, alg: int, public_key: bytes) -> bytes:
    """C2SP signed-note key ID: SHA-256(name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()[:4]


@dataclass(frozen=True)
class Verifier:
    """A trusted public key: ``<name>+<key id hex>+<base64(type || key)>``."""

    name: str
    alg: int
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.alg, self.public_key)

    @property
    def vkey(self) -> str:
        material = base64.b64encode(bytes([self.alg]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        name, sep, rest = vkey.strip().partition("+")
        hex_id, sep2, material = rest.partition("+")
        if not (sep and sep2 and name and len(hex_id) == 8):
            raise NoteError(f"not a vkey (name+keyid+key): {vkey[:80]!r}")
        try:
            raw = base64.b64decode(material, validate=True)
            wanted = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError):
            raise NoteError(f"not a vkey (bad encoding): {vkey[:80]!r}") from None
        if len(raw) != 33 or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise NoteError(f"vkey is not an Ed25519 key: {vkey[:80]!r}")
        verifier = cls(name, raw[0], raw[1:])
        if verifier.key_id != wanted:
            raise NoteError(f"vkey's key id does not match its key: {vkey[:80]!r}")
        return verifier

    def check(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class SignatureLine:
    name: str
    key_id: bytes
    signature: bytes  # after the key id: Ed25519 signature, or timestamp + signature


@dataclass(frozen=True)
class Note:
    text: str  # the signed body, with its final newline
    signatures: tuple[SignatureLine, ...]


def parse_note(note: str) -> Note:
    """Split a signed note into its text and signature lines (C2SP signed-note)."""
    if "\r" in note:
        raise NoteError("note contains a carriage return")
    text, sep, sigs = note.rpartition("\n\n")
    if not sep or not text:
        raise NoteError("note has no blank line before its signatures")
    text += "\n"
    lines = sigs.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or len(lines) > MAX_SIGNATURES:
        raise NoteError("note has no signatures (or too many)")
    parsed = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"malformed signature line: {line[:60]!r}")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise NoteError(f"signature line is not base64: {line[:60]!r}") from None
        if not name or len(raw) < 5:
            raise NoteError(f"malformed signature line: {line[:60]!r}")
        parsed.append(SignatureLine(name, raw[:4], raw[4:]))
    return Note(text, tuple(parsed))


def open_note(note: str, verifiers: Iterable[Verifier]) -> tuple[Note, list[Verifier]]:
    """The note and the trusted keys that signed it. Lines from unknown keys are ignored; a
    line from a known key that does not verify rejects the note, as the spec says."""
    parsed = parse_note(note)
    known = {(v.name, v.key_id): v for v in verifiers if v.alg == ALG_ED25519}
    signed_by = []
    for line in parsed.signatures:
        verifier = known.get((line.name, line.key_id))
        if verifier is None:
            continue
        if not verifier.check(parsed.text.encode(), line.signature):
            raise NoteError(f"signature of {line.name} ({line.key_id.hex()}) does not verify")
        signed_by.append(verifier)
    if not signed_by:
        raise NoteError("note is not signed by any trusted key")
    return parsed, signed_by


def cosignature_message(body: str, timestamp: int) -> bytes:
    """C2SP tlog-cosignature v1 (Ed25519): what a witness signs for a checkpoint."""
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def witness_cosignatures(note: Note, witnesses: Iterable[Verifier]) -> list[tuple[str, int]]:
    """(witness name, timestamp) of each valid cosignature from a trusted witness key."""
    known = {(w.name, w.key_id): w for w in witnesses if w.alg == ALG_COSIGNATURE_V1}
    found = []
    for line in note.signatures:
        witness = known.get((line.name, line.key_id))
        if witness is None or len(line.signature) != 8 + 64:
            continue
        (timestamp,) = struct.unpack(">Q", line.signature[:8])
        if witness.check(cosignature_message(note.text, timestamp), line.signature[8:]):
            found.append((witness.name, timestamp))
    return found


# --------------------------------------------------------------------------- checkpoints

RUN_HEADS_EXTENSION = "releasegate/run-heads"


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog-checkpoint body: origin, size, root, plus our run-heads extension line
    (``releasegate/run-heads <count> <base64 root>``: a Merkle tree over every run's newest
    entry, sorted by workflow id)."""

    origin: str
    size: int
    root: bytes
    heads_count: int | None = None
    heads_root: bytes | None = None

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        if self.heads_root is not None:
            heads = base64.b64encode(self.heads_root).decode()
            lines.append(f"{RUN_HEADS_EXTENSION} {self.heads_count} {heads}")
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        lines = body.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("checkpoint body needs origin, size and root lines")
        origin, size_text, root_text = lines[:3]
        if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
            raise NoteError(f"checkpoint size is not a decimal: {size_text!r}")
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error:
            raise NoteError("checkpoint root is not base64") from None
        if len(root) != 32 or not origin:
            raise NoteError("checkpoint origin or root is malformed")
        heads_count, heads_root = None, None
        for extension in lines[3:-1]:
            tag, _, rest = extension.partition(" ")
            if tag != RUN_HEADS_EXTENSION:
                continue
            count_text, _, heads_text = rest.partition(" ")
            try:
                heads_count, heads_root = (
                    int(count_text),
                    base64.b64decode(heads_text, validate=True),
                )
            except (ValueError, binascii.Error):
                raise NoteError("run-heads extension line is malformed") from None
        return cls(origin, int(size_text), root, heads_count, heads_root)


def run_head_leaf(workflow_id: str, seq: int, leaf_index: int, leaf: bytes) -> bytes:
    """Leaf data of the run-heads tree: a run's newest entry as of the checkpoint."""
    document = {
        "leaf_hash": leaf.hex(),
        "leaf_index": leaf_index,
        "seq": seq,
        "workflow_id": workflow_id,
    }
    return canonical_json(document).encode()


# --------------------------------------------------------------------------- ledger entries


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def entry_hash(workflow_id: str, entry: dict[str, Any]) -> str:
    """The ledger's hash recipe (the pack's ``ledger.hash_recipe``)."""
    document = {
        "workflow_id": workflow_id,
        "seq": entry["seq"],
        "at": entry["at"],
        "kind": entry["kind"],
        "actor": entry["actor"],
        "channel": entry["channel"],
        "payload": entry["payload"],
        "policy_version": entry["policy_version"],
        "prev_hash": entry["prev_hash"],
    }
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


GENESIS_HASH = "0" * 64

# --------------------------------------------------------------------------- the verification


@dataclass
class Report:
    ok: bool = True
    first_bad_seq: int | None = None
    bad_checkpoints: tuple[str, str] | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    proven_entries: int = 0
    checkpoint_size: int | None = None

    def fail(self, message: str, *, seq: int | None = None) -> None:
        self.ok = False
        if seq is not None and (self.first_bad_seq is None or seq < self.first_bad_seq):
            self.first_bad_seq = seq
        self.problems.append(message)

    def fork(self, first: str, second: str, message: str) -> None:
        self.ok = False
        if self.bad_checkpoints is None:
            self.bad_checkpoints = (first, second)
        self.problems.append(message)


@dataclass(frozen=True)
class Stored:
    """A checkpoint from a directory: where it came from, and its consistency link."""

    source: str
    checkpoint: Checkpoint
    old_size: int | None = None
    proof: tuple[bytes, ...] = ()


def _b64_lines(text: str) -> tuple[int, tuple[bytes, ...]]:
    lines = [line for line in text.split("\n") if line]
    if not lines or not lines[0].startswith("old "):
        raise NoteError("consistency file must start with 'old <size>'")
    old = int(lines[0][4:])
    return old, tuple(base64.b64decode(line, validate=True) for line in lines[1:])


def load_checkpoints(
    dirs: Sequence[Path], keys: Sequence[Verifier], report: Report
) -> list[Stored]:
    """Every signed checkpoint in ``dirs`` (``*.note``), with its consistency link."""
    stored = []
    for directory in dirs:
        if not directory.is_dir():
            report.fail(f"checkpoint directory {directory} does not exist")
            continue
        for path in sorted(directory.glob("*.note")):
            try:
                note, _ = open_note(path.read_text(encoding="utf-8"), keys)
                checkpoint = Checkpoint.parse(note.text)
                link = path.with_suffix(".consistency")
                old, proof = _b64_lines(link.read_text()) if link.exists() else (None, ())
            except (NoteError, OSError, ValueError, binascii.Error) as exc:
                report.fork(str(path), str(path), f"checkpoint {path}: {exc}")
                continue
            stored.append(Stored(str(path), checkpoint, old, proof))
    return stored


def check_history(stored: Sequence[Stored], report: Report) -> dict[int, Stored]:
    """One root per size, and each checkpoint consistent with the one before it."""
    by_size: dict[int, Stored] = {}
    for item in sorted(stored, key=lambda s: s.checkpoint.size):
        seen = by_size.get(item.checkpoint.size)
        if seen is None:
            by_size[item.checkpoint.size] = item
        elif seen.checkpoint.root != item.checkpoint.root:
            report.fork(
                seen.source,
                item.source,
                f"forked history: two trees of size {item.checkpoint.size} "
                f"({seen.source} root {seen.checkpoint.root.hex()[:16]}…, {item.source} root "
                f"{item.checkpoint.root.hex()[:16]}…)",
            )
    sizes = sorted(by_size)
    for before, after in zip(sizes, sizes[1:], strict=False):
        older, newer = by_size[before], by_size[after]
        proof = newer.proof if newer.old_size == before else None
        if proof is None:
            report.fork(
                older.source,
                newer.source,
                f"checkpoints of size {before} and {after} are not linked: {newer.source} "
                f"proves consistency from size {newer.old_size}, not {before}",
            )
        elif not verify_consistency(
            before, after, older.checkpoint.root, newer.checkpoint.root, proof
        ):
            report.fork(
                older.source,
                newer.source,
                f"inconsistent checkpoints: size {after} ({newer.source}) does not extend "
                f"size {before} ({older.source}); the log was rewritten",
            )
    return by_size


def _hexes(values: Iterable[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def _pack_checkpoint(
    tlog: dict[str, Any], keys: Sequence[Verifier], history: dict[int, Stored], report: Report
) -> Checkpoint | None:
    text = tlog.get("checkpoint")
    if not text:
        report.fail(
            "the pack carries no signed checkpoint: " + (tlog.get("problem") or "none was signed"),
            seq=1,
        )
        return None
    try:
        note, _ = open_note(text, keys)
        checkpoint = Checkpoint.parse(note.text)
    except NoteError as exc:
        report.fork("pack", "pack", f"the pack's checkpoint: {exc}")
        return None
    report.checkpoint_size = checkpoint.size
    if not history:
        report.notes.append(
            "no stored checkpoints given: a forked history cannot be detected (use --checkpoints)"
        )
        return checkpoint
    same = history.get(checkpoint.size)
    if same is not None:
        if same.checkpoint.root != checkpoint.root:
            report.fork(
                same.source,
                "pack",
                f"forked history: the pack's tree of size {checkpoint.size} is not the stored one "
                f"({same.source})",
            )
        return checkpoint
    newest = max(history)
    link = tlog.get("checkpoint_consistency") or {}
    linked = link.get("old") == newest and verify_consistency(
        newest,
        checkpoint.size,
        history[newest].checkpoint.root,
        checkpoint.root,
        _hexes(link.get("proof", [])),
    )
    if not linked:
        report.fork(
            history[newest].source,
            "pack",
            f"the pack's checkpoint (size {checkpoint.size}) is not among the stored checkpoints "
            f"and not proven to extend the newest (size {newest})",
        )
    return checkpoint


def check_chain(workflow_id: str, chain: Sequence[dict[str, Any]], report: Report) -> list[str]:
    """Recompute every entry's hash and link; returns the recomputed hashes."""
    prev, hashes = GENESIS_HASH, list[str]()
    for position, entry in enumerate(chain, start=1):
        seq = entry.get("seq")
        if seq != position:
            # sorted by seq, so the entry that should be here is missing (or out of place)
            report.fail(f"seq {position} expected, found {seq}", seq=position)
            return hashes
        recomputed = entry_hash(workflow_id, entry)
        if entry.get("prev_hash") != prev:
            report.fail(f"seq {seq}: does not link to the previous entry", seq=seq)
        if recomputed != entry.get("hash"):
            report.fail(f"seq {seq}: content does not match its hash", seq=seq)
        hashes.append(recomputed)
        prev = recomputed
    return hashes


def check_inclusion(
    tlog: dict[str, Any],
    hashes: Sequence[str],
    checkpoint: Checkpoint,
    report: Report,
) -> dict[int, tuple[int, bytes]]:
    """Every leaf of the run below the checkpoint's size against the signed root. Returns the
    proven (leaf index, leaf hash) per seq."""
    proven: dict[int, tuple[int, bytes]] = {}
    failed = 0
    for item in sorted(tlog.get("leaves", []), key=lambda i: i["seq"]):
        seq, index = int(item["seq"]), int(item["leaf_index"])
        if seq > len(hashes):
            report.fail(f"seq {seq}: in the log (leaf {index}) but missing from the chain", seq=seq)
            continue
        leaf = entry_leaf_hash(hashes[seq - 1])
        if verify_inclusion(
            leaf, index, checkpoint.size, _hexes(item["inclusion"]), checkpoint.root
        ):
            proven[seq] = (index, leaf)
        else:
            failed += 1
            report.fail(
                f"seq {seq}: not in the signed tree of size {checkpoint.size} (leaf {index}): "
                "the entry was rewritten after it was logged",
                seq=seq,
            )
    if failed and failed == len(tlog.get("leaves", [])):
        report.problems.append(
            "no entry's inclusion proof reaches the signed root: the tree this pack was "
            "proven with is not the signed one (the log itself was rewritten)"
        )
    pending = [int(p["seq"]) for p in tlog.get("pending", [])]
    listed = {int(item["seq"]) for item in tlog.get("leaves", [])} | set(pending)
    unlisted = [seq for seq in range(1, len(hashes) + 1) if seq not in listed]
    if unlisted:
        report.fail(
            f"seq {unlisted[0]}: the log gives no leaf for it (not logged, or its leaf deleted)",
            seq=unlisted[0],
        )
    if pending:
        report.notes.append(
            f"seq {min(pending)}..{max(pending)}: newer than the checkpoint (size "
            f"{checkpoint.size}), not yet provable; verify a later pack"
        )
    report.proven_entries = len(proven)
    return proven


def check_complete(
    workflow_id: str,
    tlog: dict[str, Any],
    chain_length: int,
    proven: dict[int, tuple[int, bytes]],
    checkpoint: Checkpoint,
    report: Report,
) -> None:
    """The run's newest entry the checkpoint committed to is the end of the proven chain."""
    head = tlog.get("run_head")
    if checkpoint.heads_root is None or checkpoint.heads_count is None:
        report.fail("the checkpoint commits to no run heads: completeness cannot be shown")
        return
    if head is None:
        if proven or chain_length:
            report.fail("the pack gives no run head for a run with entries", seq=1)
        return
    seq, index, leaf = int(head["seq"]), int(head["leaf_index"]), bytes.fromhex(head["leaf_hash"])
    data = run_head_leaf(workflow_id, seq, index, leaf)
    if not verify_inclusion(
        leaf_hash(data),
        int(head["heads_index"]),
        checkpoint.heads_count,
        _hexes(head["inclusion"]),
        checkpoint.heads_root,
    ):
        report.fail("the run head is not the one the checkpoint signed", seq=1)
        return
    if chain_length < seq:
        report.fail(
            f"the run had {seq} entries at checkpoint size {checkpoint.size} but the pack's chain "
            f"ends at seq {chain_length}: entries were deleted",
            seq=chain_length + 1,
        )
    elif proven.get(seq) != (index, leaf):
        report.fail(f"seq {seq}: is not the run's signed newest entry", seq=seq)


def chained_evidence(payload: Any) -> list[dict[str, Any]]:
    """The evidence items an entry's payload records (kind, name, uri, sha256)."""
    items = payload.get("evidence") if isinstance(payload, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def check_facts(pack: dict[str, Any], chain: Sequence[dict[str, Any]], report: Report) -> None:
    """The pack's facts are what its chained entries say (never a side table's)."""
    by_seq = {e.get("seq"): e for e in chain}
    first = by_seq.get(1)
    if first is not None and first.get("kind") == "run_started":
        owners = (first.get("payload") or {}).get("owners")
        if owners is not None and pack.get("owners") != owners:
            report.fail("owners differ from the run_started entry", seq=1)
    if chain:
        last = chain[-1]
        stage = (last.get("payload") or {}).get("stage")
        if (pack.get("use_case") or {}).get("stage") != stage:
            report.fail(
                f"stage differs from the newest entry (seq {last.get('seq')})", seq=last.get("seq")
            )
    for decision in pack.get("decisions", []):
        seq = decision.get("seq")
        entry = by_seq.get(seq)
        payload = (entry or {}).get("payload") or {}
        recorded = (
            entry is not None
            and entry.get("kind") == "decision"
            and entry.get("actor") == decision.get("actor")
            and payload.get("decision") == decision.get("decision")
            and payload.get("gate") == decision.get("gate")
            and payload.get("comment", "") == decision.get("comment", "")
            and payload.get("evidence_digests", []) == decision.get("evidence_digests", [])
        )
        if not recorded:
            report.fail(f"decision at seq {seq} is not what the chain recorded", seq=seq)
    expected = sorted(
        (e["seq"], i["kind"], i["name"], i["uri"], i["sha256"].lower())
        for e in chain
        for i in chained_evidence(e.get("payload"))
    )
    shown = sorted(
        (
            i.get("ledger_seq"),
            i.get("kind"),
            i.get("name"),
            i.get("uri"),
            str(i.get("sha256")).lower(),
        )
        for i in pack.get("evidence", [])
    )
    if shown != expected:
        bad = sorted(set(shown) ^ set(expected), key=lambda t: t[0] or 0)
        seq = bad[0][0] if bad else None
        report.fail(f"evidence items differ from the chained entries (first at seq {seq})", seq=seq)


def verify_pack(
    pack: dict[str, Any],
    keys: Sequence[Verifier],
    checkpoint_dirs: Sequence[Path] = (),
    witnesses: Sequence[Verifier] = (),
) -> Report:
    report = Report()
    workflow_id = (pack.get("use_case") or {}).get("id", "")
    chain = (pack.get("ledger") or {}).get("chain", [])
    tlog = pack.get("transparency") or {}
    if tlog.get("workflow_id") not in (None, workflow_id):
        report.fail("the transparency section is for another run", seq=1)
    history = check_history(load_checkpoints(checkpoint_dirs, keys, report), report)
    checkpoint = _pack_checkpoint(tlog, keys, history, report)
    hashes = check_chain(workflow_id, chain, report)
    if checkpoint is not None:
        if tlog.get("problem"):
            report.fail(f"the log could not prove this pack: {tlog['problem']}", seq=1)
        proven = check_inclusion(tlog, hashes, checkpoint, report)
        check_complete(workflow_id, tlog, len(chain), proven, checkpoint, report)
        if witnesses and tlog.get("checkpoint"):
            cosigned = witness_cosignatures(parse_note(tlog["checkpoint"]), witnesses)
            if cosigned:
                report.notes.append("cosigned by " + ", ".join(name for name, _ in cosigned))
            else:
                report.fail("the pack's checkpoint carries no cosignature of a trusted witness")
    check_facts(pack, chain, report)
    return report


# --------------------------------------------------------------------------- command line


def load_keys(sources: Sequence[str]) -> list[Verifier]:
    """vkeys from literal vkeys, files of vkeys (one per line), or ``/v1/ledger/keys`` JSON."""
    keys: list[Verifier] = []
    for source in sources:
        path = Path(source)
        text = path.read_text(encoding="utf-8") if path.is_file() else source
        stripped = text.strip()
        if stripped.startswith("{"):
            document = json.loads(stripped)
            keys += [Verifier.parse(k["vkey"]) for k in document.get("keys", [])]
        else:
            keys += [Verifier.parse(line) for line in stripped.splitlines() if line.strip()]
    return keys


def render(report: Report, workflow_id: str) -> str:
    lines = []
    if report.ok:
        size = report.checkpoint_size
        lines.append(
            f"{workflow_id}: VERIFIED: {report.proven_entries} entries proven against the signed "
            f"checkpoint of size {size}"
        )
    else:
        where = []
        if report.first_bad_seq is not None:
            where.append(f"first bad entry: seq {report.first_bad_seq}")
        if report.bad_checkpoints is not None:
            where.append(
                "inconsistent checkpoints: "
                f"{report.bad_checkpoints[0]} and {report.bad_checkpoints[1]}"
            )
        lines.append(f"{workflow_id}: FAILED ({'; '.join(where) or 'see below'})")
    lines += [f"  problem: {p}" for p in report.problems]
    lines += [f"  note: {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a ReleaseGate evidence pack offline.")
    parser.add_argument("pack", type=Path, help="the evidence pack (JSON)")
    parser.add_argument("--checkpoints", type=Path, action="append", default=[], metavar="DIR")
    parser.add_argument("--key", action="append", required=True, metavar="VKEY|FILE")
    parser.add_argument("--witness", action="append", default=[], metavar="VKEY|FILE")
    args = parser.parse_args(argv)
    try:
        pack = json.loads(args.pack.read_text(encoding="utf-8"))
        keys = load_keys(args.key)
        witnesses = load_keys(args.witness)
    except (OSError, ValueError, KeyError, NoteError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    report = verify_pack(pack, keys, args.checkpoints, witnesses)
    sys.stdout.write(render(report, (pack.get("use_case") or {}).get("id", "?")))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
