"""HTTP hardening: CORS closed unless configured, a request body limit, no NUL in a path or
query, security headers.

``install(app, settings)`` wires them all. The headers wrap the whole middleware stack, so
they are on every response, the 500s Starlette's error middleware writes included.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.problems import problem_response
from services.settings import Settings

# The API serves JSON only: nothing may load, frame or submit from its responses.
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI and ReDoc load their scripts, styles and fonts from CDNs and bootstrap with an
# inline script; these pages show the public OpenAPI document and nothing else.
DOCS_CSP = (
    "default-src 'none'; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "connect-src 'self'; worker-src blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
HSTS = "max-age=63072000; includeSubDomains"
CORS_METHODS = ["GET", "POST", "OPTIONS"]
# X-Namespace: the Temporal UI sends it with its calls to a remote codec endpoint.
CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-Namespace"]


def install(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(NulGuardMiddleware)
    origins = settings.cors_origin_list
    if origins:
        # Bearer tokens, no cookies: credentials stay off, so a page can never ride a session.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=["Location"],
            allow_credentials=False,
            max_age=600,
        )
    build_stack = app.build_middleware_stack

    def build_with_headers() -> ASGIApp:
        return SecurityHeadersMiddleware(build_stack())

    app.build_middleware_stack = build_with_headers  # type: ignore[method-assign]


def is_docs_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in DOCS_PATHS)


class SecurityHeadersMiddleware:
    """Adds the headers to every HTTP response; a header the route set itself is kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        https = scope.get("scheme") == "https" or _forwarded_https(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                defaults = {
                    "X-Content-Type-Options": "nosniff",
                    "X-Frame-Options": "DENY",
                    "Referrer-Policy": "no-referrer",
                    "Content-Security-Policy": DOCS_CSP if is_docs_path(path) else STRICT_CSP,
                    "Cross-Origin-Opener-Policy": "same-origin",
                }
                if path == "/v1" or path.startswith("/v1/"):
                    defaults["Cache-Control"] = "no-store"
                if https:
                    defaults["Strict-Transport-Security"] = HSTS
                for name, value in defaults.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _forwarded_https(scope: Scope) -> bool:
    """Behind a TLS-terminating proxy: the first hop's X-Forwarded-Proto says https."""
    proto = Headers(scope=scope).get("x-forwarded-proto", "")
    return proto.split(",")[0].strip().lower() == "https"


class BodyTooLarge(HTTPException):  # noqa: N818 - the request body is too large
    """An HTTPException so FastAPI re-raises it from body parsing (other errors there become
    400) and the problem handler renders it; the middleware catches it where nothing did."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")


class BodyLimitMiddleware:
    """413 problem+json for bodies over ``max_bytes``: by Content-Length before reading, and by
    counting streamed (chunked) bodies as they arrive."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                too_large = False  # the server rejects a malformed length before we see it
            if too_large:
                await self._reject(scope, receive, send)
                return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if response_started:
                raise
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            f"the request body is larger than {self.max_bytes} bytes",
            "payload-too-large",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


class NulGuardMiddleware:
    """400 problem+json for a path or query string holding U+0000 (``%00``), before any route.

    Every path id and query value ends up in a SQL parameter, and PostgreSQL refuses NUL in
    text: the driver's error would answer 503 "database unreachable" for what is bad input.
    (NUL in bodies is refused by the command layer, naming the field.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b"")
        ):
            response = problem_response(
                400,
                "the request's path or query holds a NUL character (U+0000)",
                "bad-request",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
