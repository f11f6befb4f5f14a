"""The approver console's pages under ``/ui``: sign-in, inbox, portfolio, use case, decide,
live actions, flow metrics.

Routes are thin: they read the session, check the form's CSRF token, and call the command layer
(``services.commands``) exactly as REST and Slack do, with ``channel: web``, so every rule and
every ledger entry is the same. Reads keep need-to-know (a run the caller may not read is a
404 page, as over REST).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from services.api.deps import DbSession, Res, Resources
from services.api.problems import Problem
from services.api.routes.metrics import flow_of, parse_instant
from services.api.ui import session as sessions
from services.api.ui.oidc_login import OidcLogin, SignInFailed
from services.api.ui.pages import (
    ConsoleError,
    SignInRequired,
    redirect,
    refusals,
    render,
)
from services.api.ui.queries import ConsoleQueries
from services.api.ui.views import (
    ELIGIBILITY_TEXT,
    Eligibility,
    Inbox,
    InboxItem,
    SlaState,
    decisions,
    eligibility,
    gate_of,
    opened_at,
    seats,
    sla_state,
    timeline,
)
from services.commands.errors import CommandRefused
from services.commands.evidence import state_etag
from services.commands.idempotency import request_sha256
from services.commands.service import CommandService, Sender, workflow_id
from services.report import html as report
from services.store.console import ConsoleRepository
from services.store.models import UseCase
from services.store.registry import RegistryRepository
from workflows import policy
from workflows.activities import SideDecisionKind
from workflows.model import (
    Channel,
    CommandName,
    Decision,
    Gate,
    Materiality,
    RaiseChange,
    ReportIncident,
    Resume,
    RiskTier,
    Severity,
    Stage,
    Suspend,
    UseCaseView,
)
from workflows.policy import Person

router = APIRouter(prefix="/ui", include_in_schema=False)
Choice = TypeVar("Choice", bound=Enum)

INBOX_LIMIT = 200
PAGE_SIZE = 25
FORM_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
SAFE_NEXT = re.compile(r"^/ui(/[A-Za-z0-9._~/?=&%-]*)?$")
LIVE_COMMANDS: dict[CommandName, Any] = {
    CommandName.REPORT_INCIDENT: lambda who: ReportIncident(
        actor=who, severity=Severity.SEV4, summary="-"
    ),
    CommandName.SUSPEND: lambda who: Suspend(actor=who, reason="-"),
    CommandName.RESUME: lambda who: Resume(actor=who),
    CommandName.RAISE_CHANGE: lambda who: RaiseChange(
        actor=who, summary="-", materiality=Materiality.MINOR
    ),
}


# --------------------------------------------------------------------------- who is asking


async def viewer(request: Request, res: Res) -> Person:
    """The signed-in person of a page; without one, off to the sign-in page."""
    person = sessions.signed_in(request, res.directory, res.settings)
    if person is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target if SAFE_NEXT.match(target) else "/ui/inbox")
    return person


Viewer = Annotated[Person, Depends(viewer)]


@dataclass
class Submitted:
    """A form posted by a signed-in person with this session's CSRF token."""

    person: Person
    form: dict[str, str]

    def get(self, name: str, default: str = "") -> str:
        return self.form.get(name, default).strip()


async def submitted(request: Request, res: Res) -> Submitted:
    """Every console POST: a session first (401), then its CSRF token (403), before anything
    is read from the run or sent to it."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    person = sessions.signed_in(request, res.directory, res.settings)
    if person is None:
        raise ConsoleError(401, "Sign in first", "This form needs a signed-in session.")
    if not sessions.csrf_ok(request, form.get(sessions.CSRF_FIELD)):
        raise ConsoleError(
            403,
            "Form expired",
            "This form did not come from your current session (missing or stale CSRF token); "
            "nothing was recorded. Open the page again and resubmit.",
            me=person,
        )
    return Submitted(person, form)


Form = Annotated[Submitted, Depends(submitted)]


def web_sender(request: Request, sub: Submitted, body: dict[str, Any], **params: str) -> Sender:
    """The form's sender: its one-time key makes a double submit one command (the key is bound
    to this form's fields, as REST binds ``Idempotency-Key`` to a body)."""
    key = sub.get("form_key")
    if not FORM_KEY.match(key):
        return Sender(sub.person.id, Channel.WEB)
    route = getattr(request.scope.get("route"), "path_format", request.url.path)
    digest = request_sha256(f"POST {route}", params, body)
    return Sender(sub.person.id, Channel.WEB, f"web-{key}", digest)


def form_key() -> str:
    return secrets.token_urlsafe(18)


# --------------------------------------------------------------------------- sign-in


def _next(value: str | None) -> str:
    return value if value and SAFE_NEXT.match(value) and "//" not in value else "/ui/inbox"


@router.get("", include_in_schema=False)
async def home() -> RedirectResponse:
    return redirect("/ui/inbox")


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, res: Res, next: str | None = None) -> Response:  # noqa: A002
    login: OidcLogin | None = request.app.state.console_oidc
    people = (
        []
        if res.settings.is_production
        else sorted(res.directory.people.values(), key=lambda p: p.name)
    )
    me = sessions.signed_in(request, res.directory, res.settings)
    return render(
        request,
        "login.html",
        {"me": me, "people": people, "oidc": login is not None, "next": _next(next)},
    )


@router.post("/login")
async def dev_login(request: Request, res: Res) -> Response:
    """Development sign-in: pick a person of the directory (their dev tokens are public
    anyway). Never in production."""
    if res.settings.is_production:
        raise ConsoleError(404, "Not found", "Development sign-in is off in production.")
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    if not sessions.csrf_ok(request, form.get(sessions.CSRF_FIELD)):
        raise ConsoleError(403, "Form expired", "Open the sign-in page again.")
    person = res.directory.get(form.get("person", ""))
    if person is None:
        raise ConsoleError(422, "Check the form", "Choose a person from the list.")
    sessions.sign_in(request, person, sessions.DEV)
    return redirect(_next(form.get("next")))


@router.get("/login/oidc")
async def oidc_begin(request: Request, next: str | None = None) -> Response:  # noqa: A002
    login: OidcLogin | None = request.app.state.console_oidc
    if login is None:
        raise ConsoleError(404, "Not found", "OIDC sign-in is not configured.")
    url = await login.begin(request)
    request.session["next"] = _next(next)
    return redirect(url)


@router.get("/auth/callback")
async def oidc_callback(
    request: Request,
    res: Res,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    login: OidcLogin | None = request.app.state.console_oidc
    if login is None:
        raise ConsoleError(404, "Not found", "OIDC sign-in is not configured.")
    if error:
        raise ConsoleError(401, "Not signed in", "The identity provider did not sign you in.")
    target = _next(request.session.get("next"))
    try:
        person = await login.finish(request, res.directory, code, state)
    except SignInFailed as exc:
        raise ConsoleError(401, "Not signed in", str(exc)) from None
    except Problem as exc:  # the bearer-token rules: unverified email, nobody in the directory
        raise ConsoleError(exc.status, "Not signed in", exc.detail) from None
    sessions.sign_in(request, person, sessions.OIDC)
    return redirect(target)


@router.post("/logout")
async def logout(request: Request, sub: Form) -> Response:
    sessions.sign_out(request)
    return redirect("/ui/login")


# --------------------------------------------------------------------------- inbox


def _inbox_item(row: UseCase, res: Resources, now: datetime, escalated: bool) -> InboxItem:
    gate = gate_of(row.gate)
    rule = None
    if gate is not None and row.risk_tier in set(RiskTier):
        rule = policy.gate_rule(res.policy.pin(RiskTier(row.risk_tier)), gate)
    return InboxItem(
        workflow_id=row.workflow_id,
        key=row.key,
        title=row.title,
        risk_tier=row.risk_tier,
        gate=row.gate or "",
        round=row.round,
        quorum=row.quorum or 0,
        approvals=list(row.approvals or []),
        due_at=row.due_at,
        opened_at=opened_at(row.due_at, rule),
        sla=sla_state(row.due_at, rule, now),
        escalated_to_me=escalated,
    )


@router.get("/inbox", response_class=HTMLResponse)
async def inbox(request: Request, me: Viewer, res: Res, session: DbSession) -> Response:
    """Gates waiting on me, oldest first; the escalation owner also sees the gates escalated
    to them (past their SLA)."""
    now = datetime.now(UTC)
    mine = await RegistryRepository(session).pending_for(me.id, limit=INBOX_LIMIT)
    escalated = await ConsoleRepository(session).escalated_to(me.id, now, limit=INBOX_LIMIT)
    items = {r.workflow_id: _inbox_item(r, res, now, False) for r in mine if r.gate}
    for row in escalated:
        items.setdefault(row.workflow_id, _inbox_item(row, res, now, True))
    ordered = sorted(items.values(), key=lambda i: (i.opened_at or i.due_at or now, i.workflow_id))
    side = [
        {
            "key": row.key,
            "title": row.title,
            "risk_tier": row.risk_tier,
            "what": "Break-glass review"
            if item.kind == SideDecisionKind.OVERRIDE_REVIEW
            else "Exception",
            "ref": item.ref,
            "due_at": item.due_at,
            "seats_left": max((item.quorum or 0) - len(item.approvals or []), 0),
            "quorum": item.quorum or 0,
        }
        for row, item in await RegistryRepository(session).side_pending_for(
            me.id, limit=INBOX_LIMIT
        )
    ]
    return render(
        request,
        "inbox.html",
        {
            "me": me,
            "inbox": Inbox(ordered),
            "side": side,
            "states": list(SlaState),
            "nav": "inbox",
        },
    )


# --------------------------------------------------------------------------- portfolio


def _enum_filter(name: str, value: str | None, allowed: type[Stage] | type[RiskTier]) -> str:
    if not value:
        return ""
    if value not in {m.value for m in allowed}:
        raise ConsoleError(422, "Check the filters", f"{name}: unknown value {value!r}")
    return value


def _person_filter(name: str, value: str | None) -> str:
    value = (value or "").strip()
    if value and not re.fullmatch(r"[A-Za-z0-9._@-]{1,64}", value):
        raise ConsoleError(422, "Check the filters", f"{name}: not a person id")
    return value


@router.get("/use-cases", response_class=HTMLResponse)
async def portfolio(  # noqa: PLR0913 - one parameter per filter
    request: Request,
    me: Viewer,
    session: DbSession,
    res: Res,
    stage: str | None = None,
    tier: str | None = None,
    owner: str | None = None,
    waiting_on: str | None = None,
    cursor: str | None = None,
) -> Response:
    filters = {
        "stage": _enum_filter("stage", stage, Stage),
        "tier": _enum_filter("tier", tier, RiskTier),
        "owner": _person_filter("owner", owner),
        "waiting_on": _person_filter("waiting on", waiting_on),
    }
    if cursor is not None and len(cursor) > 500:
        raise ConsoleError(422, "Check the filters", "cursor: too long")
    try:
        rows, next_cursor = await ConsoleQueries(session).portfolio(
            visible_to=None if res.commands.reads_every_run(me) else me.id,
            stage=filters["stage"] or None,
            risk_tier=filters["tier"] or None,
            owner=filters["owner"] or None,
            waiting_on=filters["waiting_on"] or None,
            limit=PAGE_SIZE,
            cursor=cursor or None,
        )
    except ValueError:
        raise ConsoleError(422, "Check the filters", "cursor: not valid") from None
    return render(
        request,
        "portfolio.html",
        {
            "me": me,
            "rows": rows,
            "filters": filters,
            "next_cursor": next_cursor,
            "stages": list(Stage),
            "tiers": list(RiskTier),
            "nav": "portfolio",
        },
    )


# --------------------------------------------------------------------------- a use case


async def _allowed_live(
    commands: CommandService, wid: str, view: UseCaseView, person: Person
) -> set[CommandName]:
    """The live actions this person holds on this run now: the policy's state check, the
    command layer's own authorization, and — for a run on the loaded policy — that what the
    request opens could be staffed without them (whoever asks to resume never decides it)."""
    facts = await commands.gateway.facts(wid)
    pinned = None
    if facts.policy_sha256 == commands.policy.sha256 and facts.tier in set(RiskTier):
        pinned = commands.policy.pin(RiskTier(facts.tier))
    allowed = set()
    for command, example in LIVE_COMMANDS.items():
        cmd = example(person.id)
        try:
            policy.STATE_CHECKS[command](view, cmd)
            await commands.authorize(wid, command, person.id)
            if pinned is not None:
                policy.check_staffed_request(
                    command, pinned, facts.roster, cmd, deputies=facts.deputies
                )
        except (policy.PolicyViolation, CommandRefused):
            continue
        allowed.add(command)
    return allowed


async def _readable(commands: CommandService, use_case_id: str, person: Person) -> str:
    with refusals("/ui/use-cases"):
        wid = workflow_id(use_case_id)
        await commands.readable(wid, person)
    return wid


@router.get("/use-cases/{use_case_id}", response_class=HTMLResponse)
async def use_case_page(request: Request, use_case_id: str, me: Viewer, res: Res) -> Response:
    commands = res.commands
    wid = await _readable(commands, use_case_id, me)
    with refusals("/ui/use-cases"):
        view = await commands.state(wid)
        history = await commands.history(wid)
        live = await _allowed_live(commands, wid, view, me)
    now = datetime.now(UTC)
    can = eligibility(view, me.id)
    return render(
        request,
        "use_case.html",
        {
            "me": me,
            "view": view,
            "etag": state_etag(view),
            "eligibility": can,
            "may_decide": can is Eligibility.MAY_DECIDE,
            "why_not": ELIGIBILITY_TEXT[can],
            "seats": seats(view.open_gate) if view.open_gate else [],
            "timeline": timeline(history),
            "decisions": decisions(history),
            "now": now,
            "live": {c.value for c in live},
            "severities": list(Severity),
            "materialities": list(Materiality),
            "form_key": form_key(),
            "decision_choices": list(Decision),
            "nav": "portfolio",
        },
    )


def _answer(request: Request, me: Person, view: UseCaseView, what: str) -> Response:
    return render(
        request,
        "result.html",
        {"me": me, "view": view, "what": what, "back": f"/ui/use-cases/{view.key}"},
    )


@router.post("/use-cases/{use_case_id}/gates/{gate}/decisions", response_class=HTMLResponse)
async def decide(request: Request, use_case_id: str, gate: str, sub: Form, res: Res) -> Response:
    """A decision from the form: the ETag the approver saw goes with it, so evidence added
    since answers "evidence changed" and records nothing."""
    back = f"/ui/use-cases/{use_case_id}"
    try:
        decided, choice = Gate(gate), Decision(sub.get("decision"))
    except ValueError:
        raise ConsoleError(422, "Check the form", "Choose a decision.", back=back) from None
    comment, etag = sub.get("comment"), sub.get("etag")
    if not etag:
        raise ConsoleError(428, "Review the evidence first", "The form names no evidence.")
    sender = web_sender(
        request,
        sub,
        {"decision": choice.value, "comment": comment, "etag": etag},
        use_case_id=workflow_id_or_404(use_case_id, back),
        gate=decided.value,
    )
    wid = workflow_id_or_404(use_case_id, back)
    with refusals(back):
        if choice is not Decision.APPROVE and state_etag(await res.commands.state(wid)) != etag:
            # the REST door asks If-Match of approvals only; a page's decision of any kind
            # was made on the evidence it showed
            raise ConsoleError(
                412,
                "Evidence changed — review again",
                "New evidence was added since you opened this page. Nothing was recorded: "
                "review the current evidence and decide again.",
                back=back,
            )
        view = await res.commands.decide_as_seen(
            wid, sender, decided, choice, comment=comment, if_match=etag
        )
    return _answer(
        request, sub.person, view, f"{choice.value.replace('_', ' ')} on {gate.replace('_', ' ')}"
    )


def workflow_id_or_404(use_case_id: str, back: str) -> str:
    with refusals(back):
        return workflow_id(use_case_id)


def _choice(sub: Submitted, name: str, allowed: type[Choice], missing: str, back: str) -> Choice:
    """The form's ``name`` as one of ``allowed``; else a 422 page saying ``missing``."""
    try:
        return allowed(sub.get(name))
    except ValueError:
        raise ConsoleError(422, "Check the form", missing, back=back) from None


def _required(sub: Submitted, name: str, missing: str, back: str) -> str:
    """The form's ``name``, not blank; else a 422 page saying ``missing``."""
    value = sub.get(name)
    if not value:
        raise ConsoleError(422, "Check the form", missing, back=back)
    return value


@router.post("/use-cases/{use_case_id}/incidents", response_class=HTMLResponse)
async def report_incident(request: Request, use_case_id: str, sub: Form, res: Res) -> Response:
    back = f"/ui/use-cases/{use_case_id}"
    severity = _choice(sub, "severity", Severity, "Choose a severity.", back)
    summary = _required(sub, "summary", "Describe the incident.", back)
    wid = workflow_id_or_404(use_case_id, back)
    body = {"severity": severity.value, "summary": summary}
    with refusals(back):
        view = await res.commands.report_incident(
            wid, web_sender(request, sub, body, use_case_id=wid), severity, summary
        )
    return _answer(request, sub.person, view, f"{severity.value} incident reported")


@router.get("/use-cases/{use_case_id}/suspend", response_class=HTMLResponse)
async def confirm_suspend(request: Request, use_case_id: str, me: Viewer, res: Res) -> Response:
    """Stop-ship asks for a confirmation on a page of its own."""
    wid = await _readable(res.commands, use_case_id, me)
    with refusals(f"/ui/use-cases/{use_case_id}"):
        view = await res.commands.state(wid)
    return render(request, "suspend.html", {"me": me, "view": view, "form_key": form_key()})


@router.post("/use-cases/{use_case_id}/suspend", response_class=HTMLResponse)
async def suspend(request: Request, use_case_id: str, sub: Form, res: Res) -> Response:
    back = f"/ui/use-cases/{use_case_id}"
    reason = sub.get("reason")
    if sub.get("confirm") != "yes" or not reason:
        raise ConsoleError(
            422, "Check the form", "Give a reason and confirm the stop-ship.", back=back
        )
    wid = workflow_id_or_404(use_case_id, back)
    with refusals(back):
        view = await res.commands.suspend(
            wid, web_sender(request, sub, {"reason": reason}, use_case_id=wid), reason
        )
    return _answer(request, sub.person, view, "suspended (stop-ship)")


@router.post("/use-cases/{use_case_id}/resume", response_class=HTMLResponse)
async def resume(request: Request, use_case_id: str, sub: Form, res: Res) -> Response:
    back = f"/ui/use-cases/{use_case_id}"
    reason = sub.get("reason")
    wid = workflow_id_or_404(use_case_id, back)
    with refusals(back):
        view = await res.commands.resume(
            wid, web_sender(request, sub, {"reason": reason}, use_case_id=wid), reason=reason
        )
    return _answer(request, sub.person, view, "resume requested")


@router.post("/use-cases/{use_case_id}/changes", response_class=HTMLResponse)
async def raise_change(request: Request, use_case_id: str, sub: Form, res: Res) -> Response:
    back = f"/ui/use-cases/{use_case_id}"
    materiality = _choice(sub, "materiality", Materiality, "Choose minor or material.", back)
    summary = _required(sub, "summary", "Describe the change.", back)
    wid = workflow_id_or_404(use_case_id, back)
    body = {"summary": summary, "materiality": materiality.value}
    with refusals(back):
        raised = await res.commands.raise_change(
            wid, web_sender(request, sub, body, use_case_id=wid), summary, materiality
        )
        view = await res.commands.state(wid)
    what = f"change {raised.change_id} raised ({materiality.value}; it is at {raised.view.stage})"
    return _answer(request, sub.person, view, what)


# --------------------------------------------------------------------------- flow metrics


@router.get("/metrics", response_class=HTMLResponse)
async def flow_page(  # noqa: PLR0913 - one parameter per filter
    request: Request,
    me: Viewer,
    res: Res,
    session: DbSession,
    since: str | None = None,
    until: str | None = None,
    tier: str | None = None,
) -> Response:
    """The flow metrics, drawn with the HTML report's own charts."""
    try:
        start, end = parse_instant("since", since), parse_instant("until", until)
    except Exception as exc:  # the API's Problem: shown as this page's 422
        raise ConsoleError(422, "Check the filters", str(exc)) from None
    chosen = _enum_filter("tier", tier, RiskTier)
    metrics = await flow_of(
        session,
        res,
        None if res.commands.reads_every_run(me) else me.id,
        start,
        end,
        tier=RiskTier(chosen) if chosen else None,
        detail=True,
    )
    runs = metrics.run_rows or []
    charts = {
        # the report escapes everything it draws; its markup goes in as it is
        "cards": Markup(report._cards(metrics)),
        "stages": Markup(report._stage_chart(metrics)),
        "waits": Markup(report._wait_chart(metrics, runs)),
        "wait_bars": Markup(report._wait_bars(metrics)),
        "gates": Markup(report._gate_table(metrics)),
        "rework": Markup(report._rework_chart(metrics)),
        "rejection": Markup(report._rejection_chart(metrics)),
    }
    return render(
        request,
        "metrics.html",
        {
            "me": me,
            "charts": charts,
            "filters": {"since": since or "", "until": until or "", "tier": chosen},
            "tiers": list(RiskTier),
            "nav": "metrics",
        },
    )


__all__ = ["router"]
