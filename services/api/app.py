"""FastAPI application factory. One Temporal client and one DB engine per process."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services import command_keys, observability
from services.api import problems, security, ui
from services.api.deps import Resources
from services.api.oidc import OidcVerifier
from services.api.routes import (
    approvals,
    codec,
    controls,
    health,
    ledger,
    lists,
    live,
    metrics,
    prometheus,
    signals,
    use_cases,
    waivers,
)
from services.api.routes.slack import install_slack
from services.commands.gateway import UseCaseGateway
from services.commands.idempotency import StoredIdempotencyKeys
from services.commands.read_model import StoredReadModel
from services.commands.service import CommandService
from services.controls.catalog import load_catalog
from services.settings import DEMO_DIRECTORY, ConfigError, Settings, load_settings
from services.store.db import make_engine, make_sessionmaker
from services.temporal import connect
from workflows.policy import Directory, load_directory, load_policy

log = logging.getLogger("releasegate.api")


def is_demo_directory(path: Path) -> bool:
    """The shipped example directory, wherever it is: by path, or a copy by content."""
    try:
        if path.resolve() == DEMO_DIRECTORY.resolve():
            return True
        content = path.read_bytes()
        demo = DEMO_DIRECTORY.read_bytes()
    except OSError:
        return False
    return hashlib.sha256(content).digest() == hashlib.sha256(demo).digest()


def refuse_development_directory(settings: Settings, directory: Directory) -> None:
    """In production, a directory with development tokens (or the demo one, whose tokens are
    public) is a misconfiguration, not something to run with: ``ConfigError``. Production
    refuses dev tokens per request as well; this makes the mistake loud at start."""
    if settings.env != "production":
        return
    path = settings.directory_path
    if is_demo_directory(path):
        raise ConfigError(
            f"RELEASEGATE_ENV=production refuses the demo directory ({path}): set "
            "RELEASEGATE_DIRECTORY to your own directory file"
        )
    with_tokens = sorted(p.id for p in directory.people.values() if p.token)
    if with_tokens:
        raise ConfigError(
            f"RELEASEGATE_ENV=production refuses development tokens: {path} gives a `token:` "
            f"to {len(with_tokens)} people (first: {with_tokens[0]}); remove them and sign "
            "people in with OIDC"
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    # Fail fast on bad files, before the server accepts a single request.
    loaded_policy = load_policy(settings.policy_path)
    catalog = load_catalog(settings.controls_path, loaded_policy)
    directory = load_directory(settings.directory_path)
    refuse_development_directory(settings, directory)
    signer = command_keys.for_process(settings).signer
    if signer is None:
        raise ConfigError(
            f"{command_keys.VARIABLE}={settings.command_keys_path}: the API signs the commands "
            "it sends, so its keys file needs a signing key"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = await connect(settings, lazy=True, signer=signer)
        engine = make_engine(settings.resolved_database_url)
        gateway = UseCaseGateway(client, settings)
        sessionmaker = make_sessionmaker(engine)
        app.state.resources = Resources(
            settings=settings,
            policy=loaded_policy,
            directory=directory,
            gateway=gateway,
            commands=CommandService(
                gateway,
                loaded_policy,
                directory,
                allowed_hooks=settings.hook_allow_list,
                idempotency_keys=StoredIdempotencyKeys(sessionmaker),
                catalog=catalog,
                read_model=StoredReadModel(sessionmaker),
            ),
            engine=engine,
            sessionmaker=sessionmaker,
            catalog=catalog,
        )
        log.info(
            "policy %s (%s) loaded; %d people",
            loaded_policy.version,
            loaded_policy.sha256[:12],
            len(directory.people),
        )
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="ReleaseGate",
        version="0.1.0",
        summary="Take an AI use case from pilot to governed production",
        lifespan=lifespan,
    )
    problems.install(app)
    security.install(app, settings)
    observability.install(app, settings)  # HTTP metrics, server spans, JSON logs
    codec.install(app, settings)  # /codec/* when payload encryption is on (CORS: UI only)
    app.state.oidc = OidcVerifier.from_settings(settings)
    app.include_router(health.router)
    app.include_router(use_cases.router)
    app.include_router(live.router)
    app.include_router(signals.router)  # monitoring: Alertmanager, generic signals, runtime
    app.include_router(waivers.router)  # governed exceptions: request, grant/refuse, list
    app.include_router(approvals.router)
    app.include_router(ledger.router)
    app.include_router(ledger.log_router)  # /v1/ledger: checkpoint keys, consistency proofs
    app.include_router(controls.router)  # control catalog, per-use-case controls, OSCAL
    app.include_router(lists.router)  # incidents, evidence, changes: pages from the ledger
    app.include_router(metrics.router)
    app.include_router(prometheus.router)  # GET /metrics
    install_slack(app, settings)  # POST /slack/events, only when Slack is configured
    ui.install(app, settings, signer)  # the approver console under /ui (session cookie)
    return app
