"""A local OpenID provider for the console's sign-in: the JWKS double of the OIDC bearer tests
(``tests/api/test_oidc.py``: its ``Signer`` makes the keys and tokens) extended with discovery,
an authorization endpoint and a token endpoint that checks PKCE.

The authorization endpoint signs in whoever the test names (``next_user``) at once, as a
provider does for a user who already has a session there, and redirects back with a code.
The token endpoint answers a code once, only to the client and redirect URI it was issued for,
and only with the verifier whose S256 challenge came with the authorization request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.api.test_oidc import Signer

CLIENT_ID = "releasegate-console"


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    claims: dict[str, Any]


@dataclass
class IdentityProvider:
    signer: Signer
    next_user: dict[str, Any] = field(
        default_factory=lambda: {"email": "rita@example.com", "email_verified": True}
    )
    grants: dict[str, Grant] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                provider.get(self)

            def do_POST(self) -> None:  # noqa: N802
                provider.post(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.jwks_url = f"{self.issuer}.well-known/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------ endpoints

    def get(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        if url.path == "/.well-known/jwks.json":
            self._json(h, 200, {"keys": [self.signer.jwk()]})
        elif url.path == "/.well-known/openid-configuration":
            self._json(
                h,
                200,
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}authorize",
                    "token_endpoint": f"{self.issuer}token",
                    "jwks_uri": self.jwks_url,
                    "code_challenge_methods_supported": ["S256"],
                },
            )
        elif url.path == "/authorize":
            self._authorize(h, {k: v[0] for k, v in parse_qs(url.query).items()})
        else:
            self._json(h, 404, {"error": "not_found"})

    def _authorize(self, h: BaseHTTPRequestHandler, q: dict[str, str]) -> None:
        self.authorize_requests.append(q)
        ok = (
            q.get("response_type") == "code"
            and q.get("client_id") == CLIENT_ID
            and "openid" in q.get("scope", "").split()
            and q.get("code_challenge_method") == "S256"
            and len(q.get("code_challenge", "")) == 43
        )
        if not ok:
            self._json(h, 400, {"error": "invalid_request"})
            return
        code = secrets.token_urlsafe(24)
        self.grants[code] = Grant(
            CLIENT_ID, q["redirect_uri"], q["code_challenge"], q.get("nonce", ""), self.next_user
        )
        back = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q.get('state', '')})}"
        h.send_response(302)
        h.send_header("Location", back)
        h.send_header("Content-Length", "0")
        h.end_headers()

    def post(self, h: BaseHTTPRequestHandler) -> None:
        if urlsplit(h.path).path != "/token":
            self._json(h, 404, {"error": "not_found"})
            return
        length = int(h.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(h.rfile.read(length).decode()).items()}
        self.token_requests.append(form)
        grant = self.grants.pop(form.get("code", ""), None)  # a code answers once
        verifier = form.get("code_verifier", "")
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("client_id") != grant.client_id
            or form.get("redirect_uri") != grant.redirect_uri
            or not secrets.compare_digest(challenge, grant.challenge)
        ):
            self._json(h, 400, {"error": "invalid_grant"})
            return
        id_token = self.signer.token(
            iss=self.issuer,
            aud=CLIENT_ID,
            sub=f"00u-{grant.claims.get('email', 'x')}",
            nonce=grant.nonce,
            groups=None,
            **grant.claims,
        )
        self._json(h, 200, {"access_token": "opaque", "token_type": "Bearer", "id_token": id_token})

    @staticmethod
    def _json(h: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
