"""The checkpoint key file (``RELEASEGATE_CHECKPOINT_KEYS``).

```json
{"origin": "ledger.bank.example/releasegate",
 "signing": {"private_key": "<base64url Ed25519 seed>"},
 "keys": [{"public_key": "<base64>", "created_at": "2026-12-03T10:00:00Z", "retired_at": null},
          {"public_key": "<base64>", "created_at": "…", "retired_at": "2026-12-03T10:00:00Z"}]}
```

``origin`` is the log's name: the first line of every checkpoint and the name in its
signatures. ``signing`` is the worker's current key; ``keys`` are every public key the log has
signed with (a rotated key stays listed, retired, so older checkpoints keep verifying); the API
publishes them at ``GET /v1/ledger/keys`` and needs only this part (give it a file without
``signing`` in production). In development the file is made on first use, like the command
keys.

    python -m services.tlog.keys new [--origin NAME] > keys.json
    python -m services.tlog.keys rotate keys.json     # new signing key, the old one retired
    python -m services.tlog.keys public < keys.json   # the file without the private key
    python -m services.tlog.keys vkeys < keys.json    # vkeys for auditors (one per line)
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.settings import ConfigError, Settings
from services.tlog.auditor import ALG_ED25519, Verifier
from services.tlog.note import NoteSigner, new_seed

VARIABLE = "RELEASEGATE_CHECKPOINT_KEYS"
DEFAULT_ORIGIN = "releasegate.local/ledger"


@dataclass(frozen=True)
class PublishedKey:
    verifier: Verifier
    created_at: str | None
    retired_at: str | None

    @property
    def active(self) -> bool:
        return self.retired_at is None

    def document(self) -> dict[str, Any]:
        return {
            "vkey": self.verifier.vkey,
            "key_id": self.verifier.key_id.hex(),
            "public_key": base64.b64encode(self.verifier.public_key).decode(),
            "algorithm": "ed25519",
            "active": self.active,
            "created_at": self.created_at,
            "retired_at": self.retired_at,
        }


@dataclass(frozen=True)
class CheckpointKeys:
    origin: str
    signer: NoteSigner | None
    published: tuple[PublishedKey, ...]

    @property
    def verifiers(self) -> list[Verifier]:
        return [k.verifier for k in self.published]

    def document(self) -> dict[str, Any]:
        return {"origin": self.origin, "keys": [k.document() for k in self.published]}


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def generate(origin: str = DEFAULT_ORIGIN) -> dict[str, Any]:
    seed = new_seed()
    public = NoteSigner(origin, seed).public_key
    return {
        "origin": origin,
        "signing": {"private_key": _b64url(seed)},
        "keys": [
            {
                "public_key": base64.b64encode(public).decode(),
                "created_at": _now(),
                "retired_at": None,
            }
        ],
    }


def rotate(document: dict[str, Any]) -> dict[str, Any]:
    """A new signing key; every earlier key stays published, the active one now retired."""
    fresh = generate(str(document["origin"]))
    stamp = _now()
    kept = [{**k, "retired_at": k.get("retired_at") or stamp} for k in document.get("keys", [])]
    return {**fresh, "keys": fresh["keys"] + kept}


def _write_new(path: Path, document: dict[str, Any]) -> None:
    """Write aside and link into place: a process starting at the same moment reads a whole
    file or none, and an existing file is never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=".checkpoint-keys-")
    try:
        with os.fdopen(fd, "w") as f:  # mkstemp: readable by its owner only
            json.dump(document, f, indent=2)
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    finally:
        os.unlink(aside)


def ensure(path: Path) -> None:
    if not path.exists():
        _write_new(path, generate())


def parse(document: dict[str, Any], where: str) -> CheckpointKeys:
    try:
        origin = str(document["origin"])
        if not origin or any(c.isspace() for c in origin) or "+" in origin:
            raise ValueError(f"origin {origin!r} must be non-empty, without spaces or '+'")
        published = tuple(
            PublishedKey(
                Verifier(origin, ALG_ED25519, base64.b64decode(k["public_key"], validate=True)),
                k.get("created_at"),
                k.get("retired_at"),
            )
            for k in document.get("keys", [])
        )
        signing = document.get("signing")
        signer = None
        if signing:
            raw = str(signing["private_key"])
            signer = NoteSigner(origin, base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ConfigError(f"{where}: invalid checkpoint keys ({exc})") from None
    if any(len(k.verifier.public_key) != 32 for k in published):
        raise ConfigError(f"{where}: a public key is not 32 bytes")
    if signer is not None and signer.verifier not in {k.verifier for k in published}:
        raise ConfigError(f"{where}: the signing key's public key is not listed in keys")
    if not published:
        raise ConfigError(f"{where}: no public keys")
    return CheckpointKeys(origin, signer, published)


def load(path: Path) -> CheckpointKeys:
    where = f"{VARIABLE}={path}"
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the checkpoint keys: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: not JSON ({exc})") from None
    return parse(document, where)


def for_process(settings: Settings) -> CheckpointKeys:
    """The keys a process runs with: made on first use in development, required in
    production."""
    path = settings.checkpoint_keys_path
    if not settings.is_production:
        ensure(path)
    elif not path.exists():
        raise ConfigError(
            f"{VARIABLE}={path}: no checkpoint keys; production needs the signing key (worker) "
            "and the public keys (API)"
        )
    return load(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.tlog.keys")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="print a new key file")
    new.add_argument("--origin", default=DEFAULT_ORIGIN)
    turn = commands.add_parser("rotate", help="rotate the signing key of FILE in place")
    turn.add_argument("file", type=Path)
    commands.add_parser("public", help="the key file from stdin without its private key")
    commands.add_parser("vkeys", help="the vkeys of the key file from stdin, one per line")
    args = parser.parse_args(argv)
    if args.command == "new":
        json.dump(generate(args.origin), sys.stdout, indent=2)
    elif args.command == "rotate":
        rotated = rotate(json.loads(args.file.read_text()))
        aside = args.file.with_name(f".{args.file.name}.rotating")
        aside.write_text(json.dumps(rotated, indent=2))
        aside.chmod(0o600)
        aside.replace(args.file)
        signer = parse(rotated, str(args.file)).signer
        assert signer is not None  # rotate always makes a signing key
        sys.stdout.write(f"rotated: {signer.verifier.vkey}")
    else:
        document = json.load(sys.stdin)
        if args.command == "public":
            json.dump({k: v for k, v in document.items() if k != "signing"}, sys.stdout, indent=2)
        else:
            for key in parse(document, "stdin").published:
                sys.stdout.write(key.verifier.vkey + "\n")
            return 0
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
