"""Signing C2SP signed notes: the log's checkpoint signatures and a witness's cosignatures.

Verification lives in ``services.tlog.auditor`` (the auditor's one file); this is the other
half. Keys are held as raw bytes and turned into ``cryptography`` key objects per call, which
keeps those objects inside one thread (the worker signs from several activity tasks).
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.tlog.auditor import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    SIGNATURE_PREFIX,
    Verifier,
    cosignature_message,
    key_id,
)


def _public(seed: bytes) -> bytes:
    return (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )


def new_seed() -> bytes:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    return Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )


@dataclass(frozen=True)
class NoteSigner:
    """Signs note texts as ``name`` with an Ed25519 key (``alg`` 0x01: the log's own
    signature; 0x04: a tlog-cosignature/v1 witness)."""

    name: str
    seed: bytes
    alg: int = ALG_ED25519

    @property
    def public_key(self) -> bytes:
        return _public(self.seed)

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.alg, self.public_key)

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.alg, self.public_key)

    def _line(self, signature: bytes) -> str:
        encoded = base64.b64encode(self.key_id + signature).decode()
        return f"{SIGNATURE_PREFIX}{self.name} {encoded}\n"

    def sign(self, text: str) -> str:
        """The signed note of ``text`` (which must end in a newline and hold no blank line)."""
        if not text.endswith("\n") or "\n\n" in text:
            raise ValueError("a note's text ends with a newline and has no blank line")
        signature = Ed25519PrivateKey.from_private_bytes(self.seed).sign(text.encode())
        return f"{text}\n{self._line(signature)}"

    def cosign(self, text: str, timestamp: int) -> str:
        """A tlog-cosignature/v1 signature line over the checkpoint body ``text``."""
        if self.alg != ALG_COSIGNATURE_V1:
            raise ValueError("only a witness key (type 0x04) cosigns")
        key = Ed25519PrivateKey.from_private_bytes(self.seed)
        signature = key.sign(cosignature_message(text, timestamp))
        return self._line(struct.pack(">Q", timestamp) + signature)


def add_signatures(note: str, lines: str) -> str:
    """``note`` with more signature lines (e.g. a witness's answer) appended."""
    return note + "".join(line + "\n" for line in lines.splitlines() if line.strip())
