"""Monitoring signals in: Prometheus Alertmanager's webhook, a generic signed signal, and the
bundle a live use case reports running.

Every source has a secret of its own (``RELEASEGATE_SIGNAL_TOKENS``, ``source:token`` pairs):
sent as a bearer token (Alertmanager's ``http_config.authorization``), or used as the HMAC key
of a signed request (``X-ReleaseGate-Source``, ``X-ReleaseGate-Timestamp``,
``X-ReleaseGate-Signature: sha256=HMAC(token, "<timestamp>.<body>")``). A source acts in a
run as ``signal:<source>``: the run's pinned policy says what it may do (report and resolve
alerts, say what runs), never a person's part. Alerts name their use case by a label
(``RELEASEGATE_SIGNAL_USE_CASE_LABEL``); the policy's ``live.alert_severity`` maps their labels
to a severity. A payload that is malformed or names an unknown use case is refused whole
(4xx problem, counted in ``releasegate_signals_total``) before anything is sent; each alert
is then one command to its run, which opens one incident per fingerprint until it resolves.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services import observability
from services.api.deps import Res, api_sender, current_person
from services.api.problems import Problem
from services.api.state import with_etag
from services.commands.errors import CommandRefused, RunNotFound
from services.commands.service import CommandService, Sender, workflow_id
from services.commands.storable import refuse_unstorable
from workflows import limits, policy
from workflows.model import (
    SIGNAL_ACTOR_PREFIX,
    AlertFingerprint,
    Bundle,
    Channel,
    CommandName,
    Labels,
    Refusal,
    ReportIncident,
    Severity,
    UseCaseView,
)

router = APIRouter(tags=["monitoring signals"])

ALERTMANAGER = "alertmanager"
UNKNOWN_SOURCE = "unknown"
# a signed request older or newer than this is refused (replays of a captured request)
SIGNATURE_WINDOW_S = 300
MAX_ALERTS = 1000
# refusals of a resolution that mean "nothing here to resolve": the alert is ignored
_NOTHING_TO_RESOLVE = (Refusal.WRONG_STAGE, Refusal.RUN_CLOSED)


# --------------------------------------------------------------------------- payloads


class AlertmanagerAlert(BaseModel):
    """One alert of Alertmanager's webhook payload (version 4), as it sends it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    status: Literal["firing", "resolved"]
    labels: Labels = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL", max_length=4000)
    fingerprint: AlertFingerprint


class AlertmanagerPayload(BaseModel):
    """Alertmanager's webhook payload, version 4 (its ``webhook_config``)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    version: Literal["4"]
    receiver: str = Field(default="", max_length=1000)
    status: Literal["firing", "resolved"]
    alerts: list[AlertmanagerAlert] = Field(max_length=MAX_ALERTS)
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL", max_length=4000)
    group_key: str = Field(default="", alias="groupKey", max_length=4000)
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)


class GenericSignal(BaseModel):
    """``POST /v1/signals``: one alert from any monitor, as JSON."""

    model_config = ConfigDict(extra="forbid")
    use_case: str = Field(min_length=1, max_length=80, description="the use case's key or id")
    status: Literal["firing", "resolved"] = "firing"
    fingerprint: AlertFingerprint = Field(
        description="the alert's identity: one incident per fingerprint until it resolves"
    )
    summary: str = Field(default="", max_length=limits.TEXT_MAX)
    severity: Severity | None = Field(
        default=None, description="else mapped from labels by the policy's live.alert_severity"
    )
    labels: Labels = Field(default_factory=dict)
    starts_at: datetime | None = Field(
        default=None, description="when it started firing: a repeat with the same is one command"
    )


class RuntimeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bundle: Bundle


class AlertOutcome(BaseModel):
    fingerprint: str
    status: str
    use_case: str
    # accepted (firing: its incident is open), resolved, ignored (nothing to resolve), or
    # refused (the run refused it: detail and code say why)
    outcome: str
    incident: str | None = None
    code: str | None = None
    detail: str | None = None


class SignalReceipt(BaseModel):
    source: str
    received: int
    truncated_alerts: int = 0
    alerts: list[AlertOutcome]


# --------------------------------------------------------------------------- authentication


def _sha(text: str | bytes) -> bytes:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).digest()


def bearer_source(request: Request, sources: dict[str, str]) -> str | None:
    """The source whose token the bearer header carries (every source compared, in constant
    time over digests), or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    presented = _sha(token.strip())
    found = None
    for source, secret in sources.items():
        if hmac.compare_digest(presented, _sha(secret)):
            found = source
    return found


def signed_source(request: Request, body: bytes, sources: dict[str, str]) -> str | None:
    """The source of a request signed with its token (HMAC-SHA256 of "<timestamp>.<body>"),
    or None when the request is not signed; a bad signature or stale timestamp is a 401."""
    name = request.headers.get("x-releasegate-source")
    stamp = request.headers.get("x-releasegate-timestamp")
    signature = request.headers.get("x-releasegate-signature")
    if not (name or stamp or signature):
        return None
    secret = sources.get(name or "")
    try:
        age = abs(time.time() - int(stamp or ""))
    except ValueError:
        age = float("inf")
    expected = (
        "sha256="
        + hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        if secret
        else ""
    )
    if not secret or not hmac.compare_digest(_sha(expected), _sha(signature or "")):
        raise _unauthenticated("the signature does not verify for that source")
    if age > SIGNATURE_WINDOW_S:
        raise _unauthenticated(f"the timestamp is more than {SIGNATURE_WINDOW_S} s off")
    return name


def _unauthenticated(detail: str) -> Problem:
    observability.record_signal(UNKNOWN_SOURCE, "rejected:unauthenticated")
    return Problem(401, f"monitoring source not authenticated: {detail}", code="unauthenticated")


def authenticate_source(request: Request, body: bytes, res: Res, expected: str | None) -> str:
    """The monitoring source of this request (bearer token or signature), else 401; a source
    other than ``expected`` (when named) is 403."""
    sources = res.settings.signal_sources
    if not sources:
        raise _unauthenticated("no source is configured (RELEASEGATE_SIGNAL_TOKENS)")
    source = signed_source(request, body, sources) or bearer_source(request, sources)
    if source is None:
        raise _unauthenticated("send a source's token as a bearer token, or sign the request")
    if expected is not None and source != expected:
        observability.record_signal(source, "rejected:not-eligible")
        raise Problem(403, f"this endpoint takes signals from {expected} only", code="not-eligible")
    return source


def _sender(source: str) -> Sender:
    return Sender(f"{SIGNAL_ACTOR_PREFIX}{source}", Channel.MONITORING)


# --------------------------------------------------------------------------- parsing


M = TypeVar("M", bound=BaseModel)


def _count(source: str | None, outcome: str) -> None:
    if source is not None:
        observability.record_signal(source, outcome)


def _parsed(source: str | None, body: bytes, model: type[M]) -> M:
    """``body`` as ``model``: 400 when it is not JSON, 422 naming the field when it does not
    fit; both counted (for a source) and never sent on."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        _count(source, "rejected:malformed")
        raise Problem(400, "the body is not JSON", code="malformed") from None
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        _count(source, "rejected:invalid-request")
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise Problem(
            422, f"{loc}: {first['msg']}" if loc else first["msg"], code="invalid-request"
        ) from None


@dataclass(frozen=True)
class PlannedAlert:
    """One alert, checked and resolved to its run, ready to send."""

    workflow_id: str
    use_case: str
    status: str
    fingerprint: str
    severity: Severity
    summary: str
    labels: dict[str, str]
    update_id: str


def _summary(labels: dict[str, str], annotations: dict[str, str], fingerprint: str) -> str:
    name = labels.get("alertname", "")
    text = annotations.get("summary") or annotations.get("description") or ""
    both = f"{name}: {text}" if name and text else (name or text or f"alert {fingerprint}")
    return both.replace("\x00", "\ufffd")[: limits.TEXT_MAX]


def _command_of(status: str) -> CommandName:
    """The command an alert's status sends: a firing alert reports, a resolved one resolves."""
    return CommandName.REPORT_INCIDENT if status == "firing" else CommandName.RESOLVE_INCIDENT


def _update_id(
    command: CommandName, source: str, fingerprint: str, starts_at: datetime | None
) -> str:
    """One Update per alert episode: a repeated delivery is the same Update (Temporal answers
    it with its first outcome); the run's own dedupe covers everything else."""
    if starts_at is None:
        return str(uuid.uuid4())
    return f"{command.value}:{SIGNAL_ACTOR_PREFIX}{source}:{fingerprint}:{starts_at.isoformat()}"


async def _run_of(commands: CommandService, source: str, use_case: str | None, fp: str) -> str:
    """The run an alert names by its use case label: 422 when none, or an unknown one."""
    if not use_case:
        observability.record_signal(source, "rejected:unknown-use-case")
        raise Problem(422, f"alert {fp} names no use case", code="unknown-use-case")
    try:
        wid = workflow_id(use_case)
        await commands.gateway.facts(wid)
    except RunNotFound:
        observability.record_signal(source, "rejected:unknown-use-case")
        raise Problem(
            422, f"alert {fp} names an unknown use case '{use_case[:80]}'", code="unknown-use-case"
        ) from None
    return wid


def _storable(source: str, planned: PlannedAlert) -> None:
    """Refused before anything is sent when the ledger could not hold it."""
    try:
        refuse_unstorable(
            ReportIncident(
                actor=f"{SIGNAL_ACTOR_PREFIX}{source}",
                severity=planned.severity,
                summary=planned.summary,
                fingerprint=planned.fingerprint,
                labels=planned.labels,
            )
        )
    except CommandRefused as exc:
        observability.record_signal(source, "rejected:invalid-request")
        raise Problem(422, exc.detail, code="invalid-request") from None


# --------------------------------------------------------------------------- delivery


def _incident_of(view: UseCaseView, fingerprint: str) -> str | None:
    open_ = [i for i in view.incidents if i.fingerprint == fingerprint and i.resolved_at is None]
    return open_[-1].id if open_ else None


async def _deliver(
    commands: CommandService, source: str, plans: list[PlannedAlert], truncated: int = 0
) -> SignalReceipt:
    """Send each alert to its run, in order. A refusal stops nothing (a re-send is safe: the
    run dedupes); the answer is the first refusal's problem, with every alert's outcome."""
    sender = _sender(source)
    outcomes: list[AlertOutcome] = []
    first_refusal: CommandRefused | None = None
    for plan in plans:
        base = {"fingerprint": plan.fingerprint, "status": plan.status, "use_case": plan.use_case}
        try:
            if plan.status == "firing":
                view = await commands.report_alert(
                    plan.workflow_id,
                    sender,
                    plan.severity,
                    plan.summary,
                    fingerprint=plan.fingerprint,
                    labels=plan.labels,
                    update_id=plan.update_id,
                )
                outcome = AlertOutcome(
                    **base, outcome="accepted", incident=_incident_of(view, plan.fingerprint)
                )
            else:
                await commands.resolve_alert(
                    plan.workflow_id, sender, plan.fingerprint, update_id=plan.update_id
                )
                outcome = AlertOutcome(**base, outcome="resolved")
        except CommandRefused as exc:
            code = exc.refusal.value.replace("_", "-")
            if plan.status == "resolved" and exc.refusal in _NOTHING_TO_RESOLVE:
                outcome = AlertOutcome(**base, outcome="ignored", code=code, detail=exc.detail)
            else:
                first_refusal = first_refusal or exc
                outcome = AlertOutcome(**base, outcome="refused", code=code, detail=exc.detail)
        observability.record_signal(
            source, outcome.outcome if outcome.code is None else f"{outcome.outcome}:{outcome.code}"
        )
        outcomes.append(outcome)
    receipt = SignalReceipt(
        source=source, received=len(plans), truncated_alerts=truncated, alerts=outcomes
    )
    if first_refusal is not None:
        problem = Problem.refused(
            first_refusal.refusal, first_refusal.detail, first_refusal.retry_after
        )
        problem.extra = {"alerts": [o.model_dump() for o in outcomes]}
        raise problem
    return receipt


# --------------------------------------------------------------------------- routes


@router.post(
    "/v1/signals/alertmanager",
    response_model=SignalReceipt,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": AlertmanagerPayload.model_json_schema(by_alias=True)}
            },
        }
    },
)
async def alertmanager(request: Request, res: Res) -> SignalReceipt:
    """Prometheus Alertmanager's webhook (payload version 4), from source ``alertmanager``.
    Firing alerts open one incident per fingerprint until they resolve; resolved alerts are
    recorded on their incident; a firing sev1 suspends as the policy says."""
    body = await request.body()
    source = authenticate_source(request, body, res, expected=ALERTMANAGER)
    payload = _parsed(source, body, AlertmanagerPayload)
    label = res.settings.signal_use_case_label
    rule = res.policy.document.live.alert_severity_rule
    plans: list[PlannedAlert] = []
    runs: dict[str, str] = {}
    for alert in payload.alerts:
        use_case = alert.labels.get(label) or payload.common_labels.get(label)
        if use_case not in runs:
            runs[use_case or ""] = await _run_of(res.commands, source, use_case, alert.fingerprint)
        command = _command_of(alert.status)
        plan = PlannedAlert(
            workflow_id=runs[use_case or ""],
            use_case=use_case or "",
            status=alert.status,
            fingerprint=alert.fingerprint,
            severity=policy.alert_severity(rule, alert.labels),
            summary=_summary(alert.labels, alert.annotations, alert.fingerprint),
            labels=dict(alert.labels),
            update_id=_update_id(command, source, alert.fingerprint, alert.starts_at),
        )
        _storable(source, plan)
        plans.append(plan)
    return await _deliver(res.commands, source, plans, payload.truncated_alerts)


@router.post(
    "/v1/signals",
    response_model=SignalReceipt,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": GenericSignal.model_json_schema()}},
        }
    },
)
async def generic_signal(request: Request, res: Res) -> SignalReceipt:
    """One alert from any configured monitoring source, as ``GenericSignal`` JSON, with the
    source's bearer token or signed with it."""
    body = await request.body()
    source = authenticate_source(request, body, res, expected=None)
    signal = _parsed(source, body, GenericSignal)
    wid = await _run_of(res.commands, source, signal.use_case, signal.fingerprint)
    severity = signal.severity or policy.alert_severity(
        res.policy.document.live.alert_severity_rule, signal.labels
    )
    command = _command_of(signal.status)
    plan = PlannedAlert(
        workflow_id=wid,
        use_case=signal.use_case,
        status=signal.status,
        fingerprint=signal.fingerprint,
        severity=severity,
        summary=_summary(signal.labels, {"summary": signal.summary}, signal.fingerprint),
        labels=dict(signal.labels),
        update_id=_update_id(command, source, signal.fingerprint, signal.starts_at),
    )
    _storable(source, plan)
    return await _deliver(res.commands, source, [plan])


@router.post(
    "/v1/use-cases/{use_case_id}/runtime",
    response_model=UseCaseView,
    tags=["live operation"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RuntimeBody.model_json_schema()}},
        }
    },
)
async def report_runtime(
    use_case_id: str, request: Request, res: Res, response: Response
) -> UseCaseView:
    """The bundle the use case is running, from a monitoring source (its token or signature)
    or its technical or operations owner. One other than the approved bundle opens an
    ``unauthorized_change`` incident (a sev1 suspends, with the rollback hook)."""
    body = await request.body()
    sources = res.settings.signal_sources
    source = None
    if sources:
        source = signed_source(request, body, sources) or bearer_source(request, sources)
    if source is not None:
        sender = _sender(source)
    else:
        # a person's report is a command like any other: its Idempotency-Key is bound to it
        person = await current_person(request, res)
        sender = await api_sender(request, person, request.headers.get("idempotency-key"))
    parsed = _parsed(source, body, RuntimeBody)
    wid = workflow_id(use_case_id)
    try:
        view = await res.commands.report_runtime(wid, sender, parsed.bundle)
    except CommandRefused as exc:
        if source is not None:
            observability.record_signal(source, f"refused:{exc.refusal.value.replace('_', '-')}")
        raise
    if source is not None:
        observability.record_signal(source, "accepted")
    return with_etag(response, view)


__all__ = ["router"]
