"""Rendering: templates, the console's response headers, and HTML answers for errors.

Every console page carries its own Content-Security-Policy (no scripts at all; styles from
this origin only; forms post only here) and ``Cache-Control: no-store`` (pages name people and
evidence). A command the command layer refuses becomes a page with the status REST would
answer, saying what REST's problem document says.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context

from services.api.problems import problem_of
from services.api.ui import session as sessions
from services.api.ui.views import human_duration
from services.commands.errors import CommandError, EvidenceChangedSince
from workflows.policy import Directory, Person

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    # a form's POST carries its real Origin (with no-referrer it would be "null"), which the
    # CSRF check compares; other sites still learn nothing
    "Referrer-Policy": "same-origin",
}

templates = Jinja2Templates(directory=str(HERE / "templates"))


def when(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def label(value: object) -> str:
    """An enum or slug as words: ``request_changes`` → ``request changes``."""
    text = getattr(value, "value", value)
    return str(text).replace("_", " ") if text is not None else "–"


@pass_context
def person(context: Context, person_id: str) -> str:
    """``Rita Menon (rita)``: the directory's name for a person id, else the id."""
    directory: Directory = context["request"].app.state.resources.directory
    found = directory.get(person_id)
    return f"{found.name} ({person_id})" if found else person_id


templates.env.filters["when"] = when
templates.env.filters["person"] = person
templates.env.filters["label"] = label
templates.env.filters["duration"] = human_duration


class SignInRequired(Exception):  # noqa: N818 - a redirect to the sign-in page, not an error
    """A page for signed-in people, asked for without a session (GET: go and sign in)."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class ConsoleError(Exception):  # noqa: N818 - an answer page, raised from deep in a route
    """An answer page with ``status`` (refused form, bad input, not found)."""

    def __init__(self, status: int, title: str, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.context = context


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    me: Person | None = context.get("me")
    full = {
        "csrf": sessions.csrf_token(request),
        "me": me,
        **context,
    }
    return templates.TemplateResponse(
        request, name, full, status_code=status, headers={**HEADERS, **(headers or {})}
    )


def error_page(request: Request, exc: ConsoleError, me: Person | None = None) -> HTMLResponse:
    headers = {"Retry-After": "5"} if exc.status == 503 else None
    return render(
        request,
        "error.html",
        {"me": me, "status": exc.status, "title": exc.title, "detail": exc.detail, **exc.context},
        status=exc.status,
        headers=headers,
    )


def refused(exc: CommandError, back: str) -> ConsoleError:
    """The command layer's refusal as an answer page: REST's status and detail."""
    problem = problem_of(exc)
    if isinstance(exc, EvidenceChangedSince):
        return ConsoleError(
            problem.status,
            "Evidence changed — review again",
            "New evidence was added since you opened this page. Nothing was recorded: review "
            "the current evidence and decide again.",
            back=back,
        )
    return ConsoleError(
        problem.status, _TITLES.get(problem.status, "Refused"), exc.detail, back=back
    )


@contextmanager
def refusals(back: str) -> Iterator[None]:
    """The command layer's refusals inside, as answer pages leading back to ``back``."""
    try:
        yield
    except CommandError as exc:
        raise refused(exc, back) from None


_TITLES = {
    403: "Not allowed",
    404: "Not found",
    409: "Not possible now",
    412: "Evidence changed — review again",
    422: "Check the form",
    428: "Review the evidence first",
    503: "Try again shortly",
}


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def to_sign_in(exc: SignInRequired) -> RedirectResponse:
    return redirect(f"/ui/login?next={quote(exc.next_path)}")


__all__ = [
    "CSP",
    "ConsoleError",
    "SignInRequired",
    "error_page",
    "redirect",
    "refusals",
    "refused",
    "render",
    "templates",
    "to_sign_in",
]
