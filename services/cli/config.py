"""Where the CLI finds the API and its bearer token.

Precedence, first found wins: ``--url``/``--token`` flags; the file named by ``--config``;
the environment (``RELEASEGATE_URL``, ``RELEASEGATE_TOKEN``); the default config file
(``$XDG_CONFIG_HOME/releasegate/config.toml``, else ``~/.config/releasegate/config.toml``);
``http://localhost:8000`` for the URL. An explicit ``--config`` beats the environment because
naming a file is the more deliberate choice.

The file is TOML with two keys::

    url = "https://releasegate.example.com"
    token = "dev-dana"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from services.cli.errors import EXIT_USAGE, CliError

DEFAULT_URL = "http://localhost:8000"
URL_ENV = "RELEASEGATE_URL"
TOKEN_ENV = "RELEASEGATE_TOKEN"


@dataclass(frozen=True)
class CliConfig:
    url: str
    token: str | None
    # where each value came from, for error messages ("flag", "env", a file path, "default")
    url_from: str
    token_from: str | None


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "releasegate" / "config.toml"


def read_config_file(path: Path, *, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise CliError(EXIT_USAGE, f"config file {path} does not exist")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(EXIT_USAGE, f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CliError(EXIT_USAGE, f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"url", "token"})
    if unknown:
        raise CliError(EXIT_USAGE, f"config file {path}: unknown key(s) {', '.join(unknown)}")
    for name in ("url", "token"):
        if name in data and not isinstance(data[name], str):
            raise CliError(EXIT_USAGE, f"config file {path}: {name} must be a string")
    return data


def resolve_config(
    *,
    url: str | None = None,
    token: str | None = None,
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> CliConfig:
    env = os.environ if env is None else env
    layers: list[tuple[str, Mapping[str, Any]]] = [("flag", {"url": url, "token": token})]
    if config_path is not None:
        layers.append((str(config_path), read_config_file(config_path, required=True)))
    layers.append(("env", {"url": env.get(URL_ENV), "token": env.get(TOKEN_ENV)}))
    if config_path is None:
        path = default_config_path(env)
        layers.append((str(path), read_config_file(path, required=False)))
    layers.append(("default", {"url": DEFAULT_URL}))

    def pick(name: str) -> tuple[str | None, str | None]:
        for source, values in layers:
            value = values.get(name)
            if value:
                return str(value), source
        return None, None

    resolved_url, url_from = pick("url")
    resolved_token, token_from = pick("token")
    # the default layer always has a URL
    assert resolved_url is not None
    assert url_from is not None
    parts = urlsplit(resolved_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(
            EXIT_USAGE,
            f"API URL {resolved_url!r} (from {url_from}) is not an http(s) URL, "
            "e.g. http://localhost:8000",
        )
    return CliConfig(
        url=resolved_url.rstrip("/"),
        token=resolved_token,
        url_from=url_from,
        token_from=token_from,
    )
