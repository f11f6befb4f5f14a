"""Authenticated commands: who acted is believed only when the run can verify it.

ReleaseGate's front doors (the API, the Slack bot, the console) sign every command they send to
a run with an Ed25519 key only they hold. The signature covers the workflow id, the command's
name, its canonical payload (actor and channel included), the idempotency scope (the Temporal
update id) and the time it was issued, and names the key that made it. The workflow verifies it
deterministically before anything is recorded: an Update without a valid credential is refused
by its validator (nothing enters history); a Signal without one is kept as a refused attempt.

So a client with access to the Temporal frontend (the CLI, the UI, any SDK) cannot decide as
anyone: it holds no signing key. It can still do what Temporal itself allows an administrator —
terminate, reset, start other workflows — which is why frontend access is locked down (mTLS and
the server's authorizer; see the README's threat model).

The worker is configured with the trusted public keys (``configure``), never the private one.
Key rotation: add the new key, sign with it, and mark the old one ``retired_at``: it keeps
verifying what it signed before that moment, so in-flight runs and their recorded histories stay
valid. Never remove a key that signed commands of runs that may still replay.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, Field

START = "start"  # the command name a run's start is signed under
# how long after it was issued a credential is accepted (clock skew between API and server,
# and the time an Update may wait in Temporal before its validator runs)
MAX_AGE = timedelta(minutes=10)
MAX_SKEW = timedelta(minutes=2)


class Credential(BaseModel):
    """What a front door attaches to a command it sends."""

    kid: str = Field(min_length=1, max_length=64)
    issued_at: datetime
    scope: str = Field(min_length=1, max_length=400)  # the update id (idempotency scope)
    signature: str = Field(min_length=1, max_length=200)


class Unauthenticated(Exception):  # noqa: N818 - a verdict, like PolicyViolation
    """The command carries no credential the run can verify."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed_bytes(
    workflow_id: str,
    command: str,
    payload: BaseModel,
    *,
    scope: str,
    issued_at: datetime,
    kid: str,
) -> bytes:
    """The canonical bytes a credential signs: the command minus its credential."""
    body = payload.model_dump(mode="json", exclude={"credential"})
    doc: dict[str, Any] = {
        "v": 1,
        "workflow_id": workflow_id,
        "command": command,
        "payload": body,
        "scope": scope,
        "issued_at": issued_at.isoformat(),
        "kid": kid,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Signer:
    """A front door's signing key (kept as its seed: cryptography's key objects are bound to
    the thread that made them, and a front door may sign from several)."""

    kid: str
    seed: bytes

    @classmethod
    def generate(cls, kid: str) -> Signer:
        from cryptography.hazmat.primitives import serialization

        raw = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cls(kid, raw)

    @classmethod
    def from_text(cls, kid: str, private_key: str) -> Signer:
        seed = _unb64(private_key)
        Ed25519PrivateKey.from_private_bytes(seed)  # malformed: fails here, at configuration
        return cls(kid, seed)

    def private_text(self) -> str:
        return _b64(self.seed)

    def public_key(self) -> TrustedKey:
        from cryptography.hazmat.primitives import serialization

        raw = (
            Ed25519PrivateKey.from_private_bytes(self.seed)
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        return TrustedKey(self.kid, _b64(raw))

    def sign(
        self, workflow_id: str, command: str, payload: BaseModel, *, scope: str, now: datetime
    ) -> Credential:
        data = signed_bytes(workflow_id, command, payload, scope=scope, issued_at=now, kid=self.kid)
        signature = Ed25519PrivateKey.from_private_bytes(self.seed).sign(data)
        return Credential(kid=self.kid, issued_at=now, scope=scope, signature=_b64(signature))


@dataclass(frozen=True)
class TrustedKey:
    """A public key the runs trust; ``retired_at``: it verifies only what it signed before."""

    kid: str
    public_key: str
    retired_at: datetime | None = None

    def verifier(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(_unb64(self.public_key))


class Keyring:
    """The trusted keys a worker verifies commands with."""

    def __init__(self, keys: Iterable[TrustedKey] = ()) -> None:
        self.keys = {k.kid: k for k in keys}
        for key in self.keys.values():
            key.verifier()  # a malformed key fails here, at configuration

    def verify(
        self,
        workflow_id: str,
        command: str,
        payload: BaseModel,
        credential: Credential | None,
        *,
        now: datetime,
        fresh: bool = True,
    ) -> None:
        """Raise ``Unauthenticated`` unless ``credential`` is a valid signature of exactly this
        command to exactly this run by a trusted key. ``fresh``: also within ``MAX_AGE`` of
        ``now`` (an Update's validator; a Signal is judged when it arrives)."""
        if credential is None:
            raise Unauthenticated("the command carries no ReleaseGate credential")
        key = self.keys.get(credential.kid)
        if key is None:
            raise Unauthenticated(f"credential key {credential.kid!r} is not trusted")
        if key.retired_at is not None and credential.issued_at >= key.retired_at:
            raise Unauthenticated(f"credential key {credential.kid!r} was retired")
        if fresh and not (now - MAX_AGE <= credential.issued_at <= now + MAX_SKEW):
            raise Unauthenticated("the credential has expired or is not yet valid")
        data = signed_bytes(
            workflow_id,
            command,
            payload,
            scope=credential.scope,
            issued_at=credential.issued_at,
            kid=credential.kid,
        )
        try:
            # A key object per call: cryptography's key objects are bound to the thread that
            # made them, and workflow code runs on the worker's workflow threads.
            key.verifier().verify(_unb64(credential.signature), data)
        except (InvalidSignature, ValueError):
            raise Unauthenticated("the credential does not match the command") from None


# The worker process configures the trusted keys before it polls; workflow code reads them here.
# They are configuration, like the worker's code: keep retired keys listed (see module doc).
_keyring = Keyring()


def configure(keyring: Keyring) -> None:
    global _keyring
    _keyring = keyring


def keyring() -> Keyring:
    return _keyring


__all__ = [
    "MAX_AGE",
    "START",
    "Credential",
    "Keyring",
    "Signer",
    "TrustedKey",
    "Unauthenticated",
    "configure",
    "keyring",
    "signed_bytes",
]
