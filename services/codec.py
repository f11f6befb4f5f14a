"""Payload encryption: AES-256-GCM with key ids, so Temporal stores only ciphertext.

``RELEASEGATE_CODEC_KEYS="k2:<base64 32 bytes>,k1:<base64 32 bytes>"``: the first key encrypts,
every listed key decrypts. Rotating = putting a new key first and keeping the old ones listed
until no run that still holds their ciphertext is needed.

An encrypted payload is ``{"encoding": "binary/encrypted", "encryption-key-id": kid}`` with data
``nonce (12 bytes) || ciphertext+tag`` of the whole serialized original payload (data and
metadata, so the original encoding is hidden too). The key id is bound as associated data: a
payload whose key-id metadata was swapped does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32
KID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
AAD_PREFIX = b"releasegate-codec-v1:"


class CodecError(ValueError):
    """A payload that cannot be decrypted: unknown key id, tampered or truncated data."""


@dataclass(frozen=True)
class CodecKey:
    kid: str
    key: bytes

    def __repr__(self) -> str:  # never print key material
        return f"CodecKey(kid={self.kid!r})"


def parse_keys(spec: str) -> list[CodecKey]:
    """``"kid:base64,kid2:base64"`` → keys, current first. Errors name the entry, never the key."""
    keys: list[CodecKey] = []
    for n, raw in enumerate(spec.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        kid, sep, b64 = entry.partition(":")
        kid = kid.strip()
        if not sep or not KID.match(kid):
            raise ValueError(
                f"RELEASEGATE_CODEC_KEYS entry {n}: expected kid:base64key with a key id of "
                "1-64 characters A-Z a-z 0-9 . _ -"
            )
        try:
            key = base64.b64decode(b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"RELEASEGATE_CODEC_KEYS key {kid!r}: not valid base64") from None
        if len(key) != KEY_BYTES:
            raise ValueError(
                f"RELEASEGATE_CODEC_KEYS key {kid!r}: AES-256 needs {KEY_BYTES} bytes, "
                f"got {len(key)} (generate one with: openssl rand -base64 32)"
            )
        if any(k.kid == kid for k in keys):
            raise ValueError(f"RELEASEGATE_CODEC_KEYS: key id {kid!r} is listed twice")
        keys.append(CodecKey(kid, key))
    if not keys:
        raise ValueError("RELEASEGATE_CODEC_KEYS is set but lists no key")
    return keys


def new_key() -> str:
    """A fresh base64 AES-256 key (for docs, tests and operators)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


class EncryptionCodec(PayloadCodec):
    """Encrypts every payload with the current key; decrypts with whichever key it names."""

    def __init__(self, keys: Sequence[CodecKey]) -> None:
        if not keys:
            raise ValueError("EncryptionCodec needs at least one key")
        self.current = keys[0]
        self._ciphers = {k.kid: AESGCM(k.key) for k in keys}

    @classmethod
    def from_spec(cls, spec: str) -> EncryptionCodec:
        return cls(parse_keys(spec))

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        kid = self.current.kid
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[kid].encrypt(nonce, payload.SerializeToString(), _aad(kid))
        return Payload(metadata={"encoding": ENCODING, KEY_ID: kid.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        """Payloads this codec did not encrypt pass through unchanged."""
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        kid = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise CodecError(
                f"payload encrypted with key id {kid!r}, which is not in RELEASEGATE_CODEC_KEYS "
                f"(known: {', '.join(self._ciphers)})"
            )
        data = payload.data
        if len(data) <= NONCE_BYTES:
            raise CodecError(f"encrypted payload (key id {kid!r}) is truncated")
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], _aad(kid))
        except InvalidTag:
            raise CodecError(
                f"encrypted payload (key id {kid!r}) failed authentication: wrong key or "
                "tampered data"
            ) from None
        return Payload.FromString(plain)


def _aad(kid: str) -> bytes:
    return AAD_PREFIX + kid.encode()
