"""The remote codec endpoint the Temporal UI and CLI use to show encrypted payloads.

``POST /codec/decode`` and ``POST /codec/encode`` take and return ``{"payloads": [...]}`` in
the protobuf JSON form of ``temporal.api.common.v1.Payloads`` (base64 ``data`` and metadata
values), as the Temporal UI (``--ui-codec-endpoint``) and ``temporal --codec-endpoint`` send.

Callers authenticate like every API caller (a bearer token naming a directory person; a UI with
"pass access token" forwards the user's OIDC token), or with the static ``RELEASEGATE_CODEC_AUTH``
value (``temporal --codec-auth``). CORS is open to the Temporal UI's origin only, and only for
these two routes. Mounted only when ``RELEASEGATE_CODEC_KEYS`` turns encryption on.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.api.common.v1 import Payload, Payloads

from services.api.deps import Res, current_person
from services.api.problems import Problem
from services.codec import CodecError, EncryptionCodec
from services.settings import Settings

log = logging.getLogger("releasegate.codec")

PREFIX = "/codec"
PATHS = (f"{PREFIX}/encode", f"{PREFIX}/decode")
MAX_PAYLOADS = 10_000
ALLOW_HEADERS = "authorization, content-type, x-namespace"

router = APIRouter(prefix=PREFIX, tags=["codec"])


async def codec_caller(request: Request, res: Res) -> str:
    """Who calls: the configured codec credential, or any authenticated person."""
    configured = res.settings.codec_auth
    header = request.headers.get("authorization", "").strip()
    if configured is not None and header:
        secret = configured.get_secret_value()
        bearer = header.partition(" ")[2].strip() if " " in header else ""
        for candidate in (header, bearer):
            if candidate and hmac.compare_digest(candidate.encode(), secret.encode()):
                return "codec-auth"
    person = await current_person(request, res)
    return person.id


Caller = Annotated[str, Depends(codec_caller)]


def _codec(request: Request) -> EncryptionCodec:
    codec: EncryptionCodec = request.app.state.codec
    return codec


async def _payloads(request: Request) -> list[Payload]:
    try:
        doc = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise Problem(
            400, 'the body must be JSON: {"payloads": [...]}', code="invalid-request"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("payloads", []), list):
        raise Problem(422, 'the body must be {"payloads": [...]}', code="invalid-request")
    if len(doc.get("payloads", [])) > MAX_PAYLOADS:
        raise Problem(422, f"at most {MAX_PAYLOADS} payloads per call", code="invalid-request")
    try:
        parsed = json_format.ParseDict({"payloads": doc.get("payloads", [])}, Payloads())
    except json_format.ParseError as exc:
        raise Problem(422, f"not Temporal payloads: {exc}", code="invalid-request") from None
    return list(parsed.payloads)


def _answer(payloads: list[Payload]) -> JSONResponse:
    body: dict[str, Any] = {
        "payloads": [json_format.MessageToDict(p) for p in payloads],
    }
    return JSONResponse(body)


@router.post("/encode")
async def encode(request: Request, caller: Caller) -> JSONResponse:
    """Encrypt payloads with the current key (the UI encodes what it sends, e.g. a signal)."""
    payloads = await _payloads(request)
    return _answer(await _codec(request).encode(payloads))


@router.post("/decode")
async def decode(request: Request, caller: Caller) -> JSONResponse:
    """Decrypt payloads; ones that are not encrypted come back unchanged."""
    payloads = await _payloads(request)
    try:
        decoded = await _codec(request).decode(payloads)
    except CodecError as exc:
        raise Problem(422, str(exc), code="undecodable-payload") from None
    log.info("decoded %d payloads for %s", len(payloads), caller)
    return _answer(decoded)


class CodecCorsMiddleware:
    """CORS for the codec routes alone, open to one origin: the Temporal UI's. Preflights are
    answered here; actual responses (errors included) get the allow-origin header."""

    def __init__(self, app: ASGIApp, origin: str) -> None:
        self.app = app
        self.origin = origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") not in PATHS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        allowed = origin == self.origin
        if scope.get("method") == "OPTIONS" and headers.get("access-control-request-method"):
            response = (
                Response(
                    status_code=204,
                    headers={
                        "Access-Control-Allow-Origin": self.origin,
                        "Access-Control-Allow-Methods": "POST, OPTIONS",
                        "Access-Control-Allow-Headers": ALLOW_HEADERS,
                        "Access-Control-Max-Age": "600",
                        "Vary": "Origin",
                    },
                )
                if allowed
                else Response("origin not allowed", status_code=403, media_type="text/plain")
            )
            await response(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out.add_vary_header("Origin")
                if allowed:
                    out["Access-Control-Allow-Origin"] = self.origin
            await send(message)

        await self.app(scope, receive, send_with_cors)


def install(app: FastAPI, settings: Settings) -> None:
    """Mount /codec when encryption is on. Call after the app-wide CORS is installed, so this
    middleware sits outside it and answers the UI's preflights itself."""
    if settings.codec_keys is None:
        return
    app.state.codec = EncryptionCodec.from_spec(settings.codec_keys.get_secret_value())
    app.include_router(router)
    app.add_middleware(CodecCorsMiddleware, origin=settings.codec_ui_origin)
