"""The Temporal connection over TLS for real: nginx terminates TLS (client certificates required,
or an API key) in front of the dev server. The right certificate works end to end, a worker
included; anything else is refused at start with a message that says what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from services import command_keys
from services.settings import PROJECT_ROOT, ConfigError, Settings, load_settings
from services.store.db import make_engine, make_sessionmaker
from services.temporal import TemporalConnectError, connect, describe_transport, tls_config
from services.worker.main import build_worker, release_activities
from services.worker.notify import LogAdapter
from tests.harness import HOOK_SECRET
from tests.security.nginx import GrpcProxy, start_proxy
from tests.security.pki import Authority, Issued
from tests.workflows.helpers import make_input
from workflows.release import UseCaseRelease

API_KEY = "test-api-key-" + uuid.uuid4().hex


class Pki:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = Authority.create(directory, "releasegate-test-ca")
        self.server = self.ca.issue(directory, "temporal-proxy", server=True)
        self.client = self.ca.issue(directory, "releasegate-worker", server=False)
        self.rogue_ca = Authority.create(directory, "rogue-ca")
        self.rogue_client = self.rogue_ca.issue(directory, "rogue-client", server=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def proxy(
    pki: Pki, temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GrpcProxy]:
    proxy = start_proxy(
        tmp_path_factory.mktemp("nginx"),
        upstream=temporal_env.client.service_client.config.target_host,
        server_cert=pki.server.cert,
        server_key=pki.server.key,
        client_ca=pki.ca.path,
        api_key=API_KEY,
    )
    yield proxy
    proxy.stop()


def settings_for(address: str, **tls: Any) -> Settings:
    return Settings(TEMPORAL_ADDRESS=address, **tls)


def mtls(pki: Pki, proxy: GrpcProxy, client: Issued | None = None, **extra: Any) -> Settings:
    client = client or pki.client
    return settings_for(
        proxy.mtls_address,
        TEMPORAL_TLS_CA=str(pki.ca.path),
        TEMPORAL_TLS_CERT=str(client.cert),
        TEMPORAL_TLS_KEY=str(client.key),
        **extra,
    )


async def test_client_certificate_works_end_to_end(
    pki: Pki, proxy: GrpcProxy, store_url: str
) -> None:
    """A client and a worker with the right certificate run a use case through the proxy."""
    settings = mtls(pki, proxy, RELEASEGATE_TASK_QUEUE=f"tls-{uuid.uuid4().hex[:8]}")
    # a front door's connection: it signs what it starts
    client = await connect(settings, signer=command_keys.for_process(settings).signer)
    ns = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=settings.temporal_namespace)
    )
    assert ns.namespace_info.name == "default"

    engine = make_engine(store_url)
    try:
        async with httpx.AsyncClient() as http:
            activities = release_activities(
                make_sessionmaker(engine), [LogAdapter()], http, HOOK_SECRET
            )
            async with build_worker(client, settings, activities):
                inp = make_input("low")
                handle = await client.start_workflow(
                    UseCaseRelease.run,
                    inp,
                    id=f"usecase-{inp.key}",
                    task_queue=settings.task_queue,
                )
                state = await handle.query(UseCaseRelease.state)
                assert state.stage.value == "scoping"
                await handle.terminate("test over")
    finally:
        await engine.dispose()
    access = (proxy.directory / "access.log").read_text()
    assert "DescribeNamespace" in access
    assert "PollWorkflowTaskQueue" in access


async def test_no_client_certificate_is_refused_at_start(pki: Pki, proxy: GrpcProxy) -> None:
    settings = settings_for(proxy.mtls_address, TEMPORAL_TLS_CA=str(pki.ca.path))
    with pytest.raises(TemporalConnectError) as refused:
        await connect(settings)
    message = str(refused.value)
    assert f"cannot connect to Temporal at {proxy.mtls_address}" in message
    assert "no client certificate" in message
    assert "the server requires a client certificate: set TEMPORAL_TLS_CERT" in message


async def test_certificate_from_another_ca_is_refused(pki: Pki, proxy: GrpcProxy) -> None:
    with pytest.raises(TemporalConnectError) as refused:
        await connect(mtls(pki, proxy, pki.rogue_client))
    assert f"client certificate {pki.rogue_client.cert}" in str(refused.value)
    assert "rejected the client certificate" in str(refused.value)


async def test_server_not_signed_by_the_configured_ca_is_refused(
    pki: Pki, proxy: GrpcProxy
) -> None:
    settings = settings_for(
        proxy.mtls_address,
        TEMPORAL_TLS_CA=str(pki.rogue_ca.path),
        TEMPORAL_TLS_CERT=str(pki.client.cert),
        TEMPORAL_TLS_KEY=str(pki.client.key),
    )
    with pytest.raises(TemporalConnectError) as refused:
        await connect(settings)
    assert "not signed by TEMPORAL_TLS_CA" in str(refused.value)


async def test_plaintext_client_against_tls_is_refused(proxy: GrpcProxy) -> None:
    with pytest.raises(TemporalConnectError) as refused:
        await connect(settings_for(proxy.mtls_address))
    assert "plaintext" in str(refused.value)


async def test_api_key_works_and_a_wrong_one_is_refused(pki: Pki, proxy: GrpcProxy) -> None:
    good = settings_for(
        proxy.api_key_address, TEMPORAL_TLS_CA=str(pki.ca.path), TEMPORAL_API_KEY=API_KEY
    )
    client = await connect(good)
    ns = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace="default")
    )
    assert ns.namespace_info.name == "default"
    assert API_KEY not in repr(good)
    assert API_KEY not in describe_transport(good)

    wrong = settings_for(
        proxy.api_key_address, TEMPORAL_TLS_CA=str(pki.ca.path), TEMPORAL_API_KEY="nope"
    )
    with pytest.raises(TemporalConnectError) as refused:
        await connect(wrong)
    assert "TEMPORAL_API_KEY" in str(refused.value)
    assert "nope" not in str(refused.value)


async def test_server_name_override(pki: Pki, proxy: GrpcProxy) -> None:
    """TEMPORAL_TLS_SERVER_NAME: verify (and send SNI) for a name the address does not carry."""
    client = await connect(mtls(pki, proxy, TEMPORAL_TLS_SERVER_NAME="localhost"))
    await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))


def test_worker_process_without_certificate_exits_with_the_reason(
    pki: Pki, proxy: GrpcProxy, store_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": proxy.mtls_address,
        "TEMPORAL_TLS_CA": str(pki.ca.path),
        "RELEASEGATE_DATABASE_URL": store_url,
        "RELEASEGATE_DATA_DIR": str(tmp_path),
    }
    for name in ("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_API_KEY"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "services.worker"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "releasegate worker: cannot connect to Temporal" in done.stderr
    assert "the server requires a client certificate" in done.stderr
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- bad settings


def test_bad_paths_fail_fast_with_the_variable_named(tmp_path: Path, pki: Pki) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=rf"TEMPORAL_TLS_CA={missing}: cannot read"):
        tls_config(settings_for("x:1", TEMPORAL_TLS_CA=str(missing)))
    not_pem = tmp_path / "junk.pem"
    not_pem.write_text("hello")
    with pytest.raises(ConfigError, match=r"TEMPORAL_TLS_CERT=.*not a PEM file"):
        tls_config(
            settings_for(
                "x:1", TEMPORAL_TLS_CERT=str(not_pem), TEMPORAL_TLS_KEY=str(pki.client.key)
            )
        )


async def test_bad_paths_fail_even_for_a_lazy_client(tmp_path: Path, pki: Pki) -> None:
    settings = settings_for(
        "127.0.0.1:1",
        TEMPORAL_TLS_CERT=str(pki.client.cert),
        TEMPORAL_TLS_KEY=str(tmp_path / "missing.key"),
    )
    with pytest.raises(ConfigError, match="TEMPORAL_TLS_KEY=.*cannot read the client private key"):
        await connect(settings, lazy=True)


def test_certificate_without_key_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, pki: Pki
) -> None:
    monkeypatch.setenv("TEMPORAL_TLS_CERT", str(pki.client.cert))
    monkeypatch.delenv("TEMPORAL_TLS_KEY", raising=False)
    with pytest.raises(ConfigError, match="TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together"):
        load_settings()


def test_transport_settings() -> None:
    assert tls_config(settings_for("x:1")) is False
    assert tls_config(settings_for("x:1", TEMPORAL_TLS=True)) is True
    assert settings_for("x:1", TEMPORAL_API_KEY="k").temporal_tls_enabled
