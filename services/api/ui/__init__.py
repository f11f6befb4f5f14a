"""The approver console: server-rendered pages under ``/ui`` for the people who decide.

``install(app, settings, signer)`` adds the session cookie (limited to ``/ui``), the pages, their
stylesheet and their HTML error answers. The pages work without JavaScript and carry none.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from services.api.ui import session as sessions
from services.api.ui.oidc_login import OidcLogin
from services.api.ui.pages import HERE, ConsoleError, SignInRequired, error_page, to_sign_in
from services.api.ui.routes import router
from services.settings import Settings
from workflows.credentials import Signer


def install(app: FastAPI, settings: Settings, signer: Signer) -> None:
    app.state.console_oidc = OidcLogin.from_settings(settings)
    app.add_middleware(
        SessionMiddleware,
        secret_key=sessions.session_secret(settings, signer),
        session_cookie=sessions.COOKIE,
        max_age=sessions.MAX_AGE_S,
        path=sessions.COOKIE_PATH,
        same_site="lax",
        https_only=sessions.secure_cookies(settings),
    )

    async def _console_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsoleError)
        return error_page(request, exc, exc.context.pop("me", None))

    async def _sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return to_sign_in(exc)

    app.add_exception_handler(ConsoleError, _console_error)
    app.add_exception_handler(SignInRequired, _sign_in)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(router)


__all__ = ["install"]
