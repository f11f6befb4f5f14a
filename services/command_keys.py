"""The command-signing keys file (``RELEASEGATE_COMMAND_KEYS``).

```json
{"signing": {"kid": "k2", "private_key": "<base64url Ed25519 seed>"},
 "trusted": [{"kid": "k2", "public_key": "<base64url>"},
             {"kid": "k1", "public_key": "<base64url>", "retired_at": "2026-12-01T00:00:00Z"}]}
```

The API (and the Slack bot, which it hosts) needs ``signing``; the worker needs only ``trusted``
and should be given a file without the private key in production. In development the file is
made on first use (``ensure``), readable by its owner only.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from services.settings import ConfigError, Settings
from workflows.credentials import Keyring, Signer, TrustedKey

VARIABLE = "RELEASEGATE_COMMAND_KEYS"


@dataclass(frozen=True)
class CommandKeys:
    signer: Signer | None
    keyring: Keyring


def generate(kid: str = "k1") -> dict[str, object]:
    signer = Signer.generate(kid)
    public = signer.public_key()
    return {
        "signing": {"kid": kid, "private_key": signer.private_text()},
        "trusted": [{"kid": kid, "public_key": public.public_key}],
    }


def ensure(path: Path) -> None:
    """Make a development keys file unless one is there (never overwrites). Written aside and
    linked into place, so a process starting at the same moment reads a whole file or none."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=".command-keys-")
    try:
        with os.fdopen(fd, "w") as f:  # mkstemp: readable by its owner only
            json.dump(generate(), f, indent=2)
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    finally:
        os.unlink(aside)


def load(path: Path) -> CommandKeys:
    where = f"{VARIABLE}={path}"
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the command keys: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{where}: not JSON ({exc})") from None
    try:
        trusted = [
            TrustedKey(
                kid=str(k["kid"]),
                public_key=str(k["public_key"]),
                retired_at=datetime.fromisoformat(k["retired_at"]) if k.get("retired_at") else None,
            )
            for k in doc.get("trusted", [])
        ]
        keyring = Keyring(trusted)
        signing = doc.get("signing")
        signer = (
            Signer.from_text(str(signing["kid"]), str(signing["private_key"])) if signing else None
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: invalid key entry ({exc})") from None
    if not keyring.keys and signer is None:
        raise ConfigError(f"{where}: neither a signing key nor trusted keys")
    return CommandKeys(signer, keyring)


def for_process(settings: Settings) -> CommandKeys:
    """The keys a process runs with: made on first use in development, required in
    production."""
    path = settings.command_keys_path
    if not settings.is_production:
        ensure(path)
    elif not path.exists():
        raise ConfigError(
            f"{VARIABLE}={path}: no command keys; production needs the signing key (API) and "
            "the trusted public keys (worker)"
        )
    return load(path)


__all__ = ["CommandKeys", "ensure", "for_process", "generate", "load"]


def main(argv: list[str] | None = None) -> None:
    """``python -m services.command_keys new [KID]`` prints a new keys file (signing + trusted);
    ``python -m services.command_keys public < keys.json`` prints the trusted part only, for
    the worker."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["new"]:
        json.dump(generate(args[1] if len(args) > 1 else "k1"), sys.stdout, indent=2)
    elif args[:1] == ["public"]:
        doc = json.load(sys.stdin)
        json.dump({"trusted": doc.get("trusted", [])}, sys.stdout, indent=2)
    else:
        raise SystemExit("usage: python -m services.command_keys new [KID] | public < FILE")
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
