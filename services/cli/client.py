"""The CLI's HTTP client: one call per command, API problems turned into exit codes."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from services.cli.errors import (
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
)

DEFAULT_TIMEOUT_S = 30.0
USER_AGENT = "releasegate-cli/0.1"

# Starlette's detail for a path no route matches: how an older server says "no such endpoint"
# (a use case it does not know is "no use case '…'").
UNMATCHED_ROUTE_DETAIL = "Not Found"


def segment(value: str) -> str:
    """One path segment, escaped (keys are slugs, but the CLI takes whatever it is given)."""
    return quote(value, safe="")


def exit_code_for(status: int) -> int:
    if status in (403, 409, 412, 422, 428):
        return EXIT_REFUSED
    if status == 404:
        return EXIT_NOT_FOUND
    if status == 503:
        return EXIT_UNREACHABLE
    if status in (400, 401, 405, 413, 415):
        return EXIT_USAGE
    return EXIT_FAILED


def problem_message(response: httpx.Response) -> str:
    """``title: detail`` from an ``application/problem+json`` body (or what the body offers)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        title = body.get("title") or response.reason_phrase or f"HTTP {response.status_code}"
        detail = body.get("detail")
        if isinstance(detail, list):  # a plain FastAPI validation error
            detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else d for d in detail)
        return f"{title}: {detail}" if detail else str(title)
    text = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    reason = response.reason_phrase or f"HTTP {response.status_code}"
    return f"{reason}: {text}" if text else reason


class Api:
    """Bearer-authenticated JSON calls against one ReleaseGate API."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        feature: str | None = None,
    ) -> Any:
        """The decoded JSON body of a 2xx answer; anything else raises ``CliError``.

        ``feature`` names an endpoint newer servers have (live verbs, ledger verification):
        an older server's 404 for an unmatched route or 405 becomes a clear message instead of
        "not found".
        """
        if not self.token:
            raise CliError(
                EXIT_USAGE,
                'no token: set RELEASEGATE_TOKEN, pass --token, or put token = "…" in '
                "~/.config/releasegate/config.toml",
            )
        sent = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._client.request(method, path, json=json, params=query, headers=sent)
        except httpx.TimeoutException as exc:
            raise CliError(
                EXIT_UNREACHABLE, f"the ReleaseGate API at {self.base_url} timed out ({exc})"
            ) from None
        except httpx.TransportError as exc:
            raise CliError(
                EXIT_UNREACHABLE, f"cannot reach the ReleaseGate API at {self.base_url}: {exc}"
            ) from None
        if response.is_success:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise CliError(
                    EXIT_FAILED, f"{method} {path}: the server answered with something not JSON"
                ) from None
        if feature and self._endpoint_missing(response):
            raise CliError(
                EXIT_NOT_FOUND,
                f"Not supported: this server has no {method} {path.split('?')[0]} ({feature}); "
                f"it answered {response.status_code}. Upgrade the ReleaseGate API.",
            )
        if response.status_code == 401:
            raise CliError(EXIT_USAGE, f"{problem_message(response)} (check your token)")
        raise CliError(exit_code_for(response.status_code), problem_message(response))

    @staticmethod
    def _endpoint_missing(response: httpx.Response) -> bool:
        if response.status_code == 405:
            return True
        if response.status_code != 404:
            return False
        try:
            body = response.json()
        except ValueError:
            return True
        return not isinstance(body, dict) or body.get("detail") == UNMATCHED_ROUTE_DETAIL

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)
