"""Metrics, traces and logs for the API and the worker.

- Prometheus: HTTP requests by route template and status, decisions by gate and outcome, gate
  wait time (``GET /metrics`` on the API); the worker's Temporal SDK metrics come from the SDK
  runtime on ``RELEASEGATE_WORKER_METRICS_PORT``.
- OpenTelemetry: a server span per API request, and the SDK's TracingInterceptor on every client
  made by ``services.temporal.connect`` (workers inherit it), so one trace runs from the HTTP
  request through StartWorkflow/UpdateWorkflow into the worker's RunActivity spans. Spans go to
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` when it is set; otherwise tracing is off and costs nothing.
- Logs: ``RELEASEGATE_LOG_FORMAT=json`` writes one JSON object per line, with the use case key
  and workflow id of the request or activity that logged it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from workflows.ids import run_key
from workflows.model import Decision

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer
    from temporalio.client import Interceptor as ClientInterceptor
    from temporalio.runtime import Runtime

    from services.settings import Settings
    from workflows.model import GateDecision, UseCaseView

log = logging.getLogger("releasegate.observability")
decision_log = logging.getLogger("releasegate.decisions")

# --------------------------------------------------------------------------- Prometheus

HTTP_REQUESTS = Counter(
    "releasegate_http_requests",
    "HTTP requests answered by the API, by route template and status code",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "releasegate_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DECISIONS = Counter(
    "releasegate_decisions",
    "Gate decisions sent to the workflow: outcome is accepted or refused:<problem code>",
    ["gate", "decision", "outcome"],
)
HOUR = 3600.0
GATE_WAIT = Histogram(
    "releasegate_gate_wait_seconds",
    "From a gate opening to the decision that passed it",
    ["gate"],
    buckets=(
        60,
        300,
        900,
        HOUR,
        4 * HOUR,
        8 * HOUR,
        24 * HOUR,
        48 * HOUR,
        72 * HOUR,
        7 * 24 * HOUR,
        14 * 24 * HOUR,
        30 * 24 * HOUR,
    ),
)
UNMATCHED = "unmatched"  # no route: never the raw path, which would explode the label set
LEDGER_BLOCKED = Gauge(
    "releasegate_ledger_blocked",
    "Runs whose ledger the store refused for good (rows in ledger_blocked); read from the "
    "database at every scrape of the API",
)
STORE_REFUSED_NAME = "releasegate_store_refused"
STORE_REFUSED_HELP = (
    "Store writes refused for good (no retry can help): the run's ledger or read model is "
    "blocked, by activity and reason"
)
STORE_REFUSED = Counter(STORE_REFUSED_NAME, STORE_REFUSED_HELP, ["activity", "reason"])


SIGNALS = Counter(
    "releasegate_signals",
    "Monitoring signals (alerts, runtime reports) by source and outcome: accepted, resolved, "
    "ignored, refused:<problem code> (the run refused it), rejected:<problem code> (never sent: "
    "unauthenticated, malformed, unknown use case)",
    ["source", "outcome"],
)


def record_signal(source: str, outcome: str, count: int = 1) -> None:
    """Count ``count`` signals of ``source`` (a configured source, or ``unknown``)."""
    SIGNALS.labels(source, outcome).inc(count)


def record_ledger_blocked(activity_name: str, reason: str) -> None:
    """Count a permanent store refusal: in this process's registry, and in the worker's own
    Prometheus endpoint (the SDK runtime's, RELEASEGATE_WORKER_METRICS_PORT) when called from
    an activity."""
    STORE_REFUSED.labels(activity_name, reason).inc()
    try:
        meter = activity.metric_meter()
    except RuntimeError:  # not in an activity
        return
    counter = meter.create_counter(STORE_REFUSED_NAME, STORE_REFUSED_HELP)
    counter.add(1, {"activity": activity_name, "reason": reason})


def record_refused_decision(cmd: GateDecision, code: str) -> None:
    DECISIONS.labels(cmd.gate.value, cmd.decision.value, f"refused:{code}").inc()
    decision_log.info(
        "decision %s on %s by %s refused: %s",
        cmd.decision.value,
        cmd.gate.value,
        cmd.actor,
        code,
        extra={"gate": cmd.gate.value, "decision": cmd.decision.value, "outcome": code},
    )


def gate_passed(cmd: GateDecision, after: UseCaseView) -> bool:
    """An approval after which the decided gate is no longer open: its quorum was met."""
    closed = after.open_gate is None or after.open_gate.gate != cmd.gate
    return closed and cmd.decision is Decision.APPROVE


def record_accepted_decision(cmd: GateDecision, view: UseCaseView) -> None:
    DECISIONS.labels(cmd.gate.value, cmd.decision.value, "accepted").inc()
    wait = None
    closed = view.last_closed_gate
    if gate_passed(cmd, view) and closed is not None and closed.gate == cmd.gate:
        # the workflow's clock on both ends: when the gate opened and when its quorum was met
        wait = max((closed.closed_at - closed.opened_at).total_seconds(), 0.0)
        GATE_WAIT.labels(cmd.gate.value).observe(wait)
    decision_log.info(
        "decision %s on %s by %s accepted; stage %s",
        cmd.decision.value,
        cmd.gate.value,
        cmd.actor,
        view.stage.value,
        extra={
            "gate": cmd.gate.value,
            "decision": cmd.decision.value,
            "outcome": "accepted",
            **({"gate_wait_seconds": round(wait, 3)} if wait is not None else {}),
        },
    )


# --------------------------------------------------------------------------- log context

_log_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "releasegate_log_context", default=None
)


def bind_workflow(workflow_id: str) -> None:
    """Name the run the current request or activity works on, for every log line after."""
    ctx = _log_context.get()
    if ctx is None:
        ctx = {}
        _log_context.set(ctx)
    ctx["workflow_id"] = workflow_id
    key = run_key(workflow_id)
    if key:
        ctx["use_case"] = key


@contextmanager
def log_context(**fields: str) -> Iterator[dict[str, str]]:
    ctx = {k: v for k, v in fields.items() if v}
    token = _log_context.set(ctx)
    try:
        yield ctx
    finally:
        _log_context.reset(token)


class ActivityLogContext(Interceptor):
    """Worker interceptor: every log line an activity writes names its workflow and use case."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityLogContextInbound(next)


class _ActivityLogContextInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        wid = info.workflow_id or ""
        with log_context(workflow_id=wid, use_case=run_key(wid) or "", activity=info.activity_type):
            return await super().execute_activity(input)


_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, use_case, workflow_id, and any
    ``extra`` fields. Temporal's own workflow/activity loggers carry the ids in their extras."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ctx = dict(_log_context.get() or {})
        for extra_key in ("temporal_activity", "temporal_workflow"):
            details = getattr(record, extra_key, None)
            if isinstance(details, dict) and details.get("workflow_id"):
                ctx.setdefault("workflow_id", str(details["workflow_id"]))
        wid = getattr(record, "workflow_id", None) or ctx.get("workflow_id")
        if wid:
            doc["workflow_id"] = wid
            key = getattr(record, "use_case", None) or ctx.get("use_case") or run_key(wid)
            if key:
                doc["use_case"] = key
        for name, value in ctx.items():
            doc.setdefault(name, value)
        for name, value in record.__dict__.items():
            if name not in _RESERVED and name not in doc and not name.startswith("_"):
                plain = isinstance(value, str | int | float | bool | dict | list | None)
                doc[name] = value if plain else str(value)
        if record.exc_info:
            doc["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(doc, default=str, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    """``json``: every root handler (one on stderr if there is none) and uvicorn's own handlers
    write JSON lines. ``text`` leaves logging as the process set it up."""
    if settings.log_format != "json":
        return
    formatter = JsonFormatter()
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
        if root.level == logging.WARNING:  # the untouched default
            root.setLevel(logging.INFO)
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)


# --------------------------------------------------------------------------- tracing

_provider: TracerProvider | None = None
TRACER_NAME = "releasegate"


def use_tracer_provider(provider: TracerProvider | None) -> None:
    """Turn tracing on with ``provider`` (tests pass one with an in-memory exporter), or off."""
    global _provider
    _provider = provider


def tracer_provider() -> TracerProvider | None:
    return _provider


def setup_tracing(settings: Settings, service_name: str) -> TracerProvider | None:
    """Once per process: an OTLP/HTTP exporter when OTEL_EXPORTER_OTLP_ENDPOINT is set (the
    exporter reads the standard OTEL_* variables itself), else tracing stays off."""
    if _provider is not None or not settings.otlp_endpoint:
        return _provider
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    use_tracer_provider(provider)
    log.info("tracing to %s as %s", settings.otlp_endpoint, service_name)
    return provider


def _tracer() -> Tracer | None:
    return _provider.get_tracer(TRACER_NAME) if _provider is not None else None


def client_interceptors() -> list[ClientInterceptor]:
    """For Client.connect: the SDK's TracingInterceptor when tracing is on. A worker made from
    the client inherits it, so workflow and activity spans continue the caller's trace."""
    tracer = _tracer()
    if tracer is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(tracer)]


# --------------------------------------------------------------------------- worker runtime


def worker_runtime(settings: Settings) -> Runtime | None:
    """An SDK runtime that serves Temporal's worker metrics for Prometheus, when
    RELEASEGATE_WORKER_METRICS_PORT is set (the worker process only)."""
    if settings.worker_metrics_port is None:
        return None
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    address = f"{settings.worker_metrics_host}:{settings.worker_metrics_port}"
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=address, durations_as_seconds=True)
        )
    )


# --------------------------------------------------------------------------- HTTP middleware


class ObservabilityMiddleware:
    """Per HTTP request: a server span (when tracing is on) that continues a W3C traceparent,
    the request counter and latency by route template, and a fresh log context."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope.get("method", "GET")
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        tracer = _tracer()
        with log_context(), _server_span(tracer, scope, method) as span:
            try:
                await self.app(scope, receive, send_status)
            except BaseException as exc:
                if span is not None:
                    span.record_exception(exc)
                raise
            finally:
                route = _route_template(scope)
                if span is not None:
                    _finish_span(span, method, route, status)
                HTTP_REQUESTS.labels(method, route, str(status)).inc()
                HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else UNMATCHED


@contextmanager
def _server_span(tracer: Tracer | None, scope: Scope, method: str) -> Iterator[Any]:
    if tracer is None:
        yield None
        return
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    carrier = {k: v for k, v in Headers(scope=scope).items() if k in ("traceparent", "tracestate")}
    with tracer.start_as_current_span(
        method,
        context=extract(carrier) if carrier else None,
        kind=trace.SpanKind.SERVER,
        record_exception=False,
        set_status_on_exception=False,
        attributes={"http.request.method": method, "url.path": scope.get("path", "")},
    ) as span:
        yield span


def _finish_span(span: Any, method: str, route: str, status: int) -> None:
    from opentelemetry.trace import Status, StatusCode

    if route != UNMATCHED:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    ctx = _log_context.get() or {}
    if ctx.get("workflow_id"):
        span.set_attribute("releasegate.workflow_id", ctx["workflow_id"])
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


def install(app: Any, settings: Settings) -> None:
    """Wire the API: tracing from settings, JSON logs, the per-request middleware."""
    setup_tracing(settings, "releasegate-api")
    configure_logging(settings)
    app.add_middleware(ObservabilityMiddleware)
