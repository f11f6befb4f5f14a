"""Payload encryption: Temporal stores only ciphertext of a use case, the codec endpoint decrypts
for authenticated callers (and the Temporal UI's origin), and rotated keys still decrypt."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from services.api.app import create_app
from services.codec import ENCODING, KEY_ID, CodecError, EncryptionCodec, new_key, parse_keys
from services.launcher import dev_server_argv
from services.settings import ConfigError, Settings, load_settings
from services.store.db import make_engine, make_sessionmaker
from services.temporal import connect
from services.worker.main import build_worker, release_activities
from services.worker.notify import LogAdapter
from tests.api.conftest import auth, seen
from tests.harness import HOOK_SECRET, api_client
from tests.workflows.helpers import make_input
from workflows.release import UseCaseRelease

TITLE = "Secret claims model"
EVIDENCE_NAME = "secret-eval.pdf"
UI_ORIGIN = "http://localhost:8233"
CODEC_AUTH = "Bearer codec-" + uuid.uuid4().hex
OLD, NEW = f"k1:{new_key()}", f"k2:{new_key()}"
SEARCH_ATTRIBUTES = "temporal.api.common.v1.SearchAttributes"


def settings_with(temporal_env: WorkflowEnvironment, store_url: str, **extra: Any) -> Settings:
    return Settings(
        TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
        RELEASEGATE_DATABASE_URL=store_url,
        **extra,
    )


@asynccontextmanager
async def stack(settings: Settings, store_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A worker and the API, both connected through services.temporal.connect."""
    engine = make_engine(store_url)
    async with AsyncExitStack() as exits:
        exits.push_async_callback(engine.dispose)
        http = await exits.enter_async_context(httpx.AsyncClient())
        client = await connect(settings)
        activities = release_activities(
            make_sessionmaker(engine), [LogAdapter()], http, HOOK_SECRET
        )
        await exits.enter_async_context(build_worker(client, settings, activities))
        app = create_app(settings)
        await exits.enter_async_context(app.router.lifespan_context(app))
        yield await exits.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
        )


def secret_evidence() -> dict[str, str]:
    return {
        "kind": "evaluation_report",
        "name": EVIDENCE_NAME,
        "uri": "https://docs.example.com/evals/42",
        "sha256": hashlib.sha256(b"secret eval").hexdigest(),
    }


async def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def start_and_validate(api: httpx.AsyncClient) -> str:
    """Low tier: start, complete the work stages (validation with the secret evidence)."""
    body = {
        "key": f"secret-{uuid.uuid4().hex[:8]}",
        "title": TITLE,
        "summary": "Scores claims for fraud",
        "risk_tier": "low",
        "owners": {
            "business_owner": "bo",
            "technical_owner": "tom",
            "operations_owner": "olga",
            "risk_approvers": ["group:risk-committee"],
            "escalation_owner": "eve",
        },
    }
    state = await ok(await api.post("/v1/use-cases", json=body, headers=auth("dana")), 201)
    wid = str(state["id"])
    for stage in ("scoping", "specification", "implementation", "validation"):
        evidence = [secret_evidence()] if stage == "validation" else []
        state = await ok(
            await api.post(
                f"/v1/use-cases/{wid}/stages/{stage}/complete",
                json={"evidence": evidence, "comment": f"{stage} done"},
                headers=auth("dana"),
            )
        )
    assert state["stage"] == "risk_signoff"
    return wid


async def approve(api: httpx.AsyncClient, wid: str, gate: str, person: str) -> dict[str, Any]:
    return await ok(
        await api.post(
            f"/v1/use-cases/{wid}/gates/{gate}/decisions",
            json={"decision": "approve"},
            headers={**auth(person), **await seen(api, f"/v1/use-cases/{wid}", person)},
        )
    )


async def no_pending_activities(client: Client, wid: str) -> None:
    for _ in range(200):
        desc = await client.get_workflow_handle(wid).describe()
        if not desc.raw_description.pending_activities:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{wid} still has pending activities")


def payloads_in(message: Message) -> list[Payload]:
    """Every Payload anywhere in a protobuf message (inputs, results, memo, headers, user
    metadata, failure details), found by walking its fields. Search attributes are left out:
    the server indexes them, so they are never encrypted (and hold no title or evidence)."""
    found: list[Payload] = []
    if isinstance(message, HistoryEvent) and is_patch_marker(message):
        return found
    if isinstance(message, HistoryEvent) and is_local_activity_marker(message):
        # the core's own bookkeeping of a local activity (its type, id, attempt, times) is
        # plain; its result is the activity's output and goes through the codec
        details = message.marker_recorded_event_attributes.details
        return [p for key, ps in details.items() if key != "data" for p in ps.payloads]
    for field, value in message.ListFields():
        if field.message_type is None or field.message_type.full_name == SEARCH_ATTRIBUTES:
            continue
        if field.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, Payload):
                found.append(item)
            elif isinstance(item, Message):
                found.extend(payloads_in(item))
    return found


def is_patch_marker(event: HistoryEvent) -> bool:
    """``workflow.patched`` markers: the SDK core writes their details (the patch id, e.g.
    "bounded-runs", and nothing of the use case) itself, without the payload codec."""
    return (
        event.HasField("marker_recorded_event_attributes")
        and event.marker_recorded_event_attributes.marker_name == "core_patch"
    )


def is_local_activity_marker(event: HistoryEvent) -> bool:
    return (
        event.HasField("marker_recorded_event_attributes")
        and event.marker_recorded_event_attributes.marker_name == "core_local_activity"
    )


async def raw_history(address: str, wid: str) -> list[HistoryEvent]:
    """Straight from the server, by a client that has no codec."""
    plain = await Client.connect(address)
    return [e async for e in plain.get_workflow_handle(wid).fetch_history_events()]


def as_json(payloads: list[Payload]) -> dict[str, Any]:
    return {"payloads": [json_format.MessageToDict(p) for p in payloads]}


def plaintext(doc: dict[str, Any]) -> bytes:
    return b"\n".join(base64.b64decode(p.get("data", "")) for p in doc["payloads"])


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def codec_settings(temporal_env: WorkflowEnvironment, store_url: str) -> Callable[..., Settings]:
    def make(keys: str, **extra: Any) -> Settings:
        return settings_with(
            temporal_env,
            store_url,
            RELEASEGATE_CODEC_KEYS=keys,
            RELEASEGATE_CODEC_AUTH=CODEC_AUTH,
            RELEASEGATE_TASK_QUEUE=extra.pop("queue", f"codec-{uuid.uuid4().hex[:8]}"),
            **extra,
        )

    return make


async def test_history_holds_only_ciphertext_and_the_endpoint_decrypts(
    codec_settings: Callable[..., Settings], store_url: str, temporal_env: WorkflowEnvironment
) -> None:
    old = codec_settings(OLD)
    async with stack(old, store_url) as api:
        wid = await start_and_validate(api)
        await approve(api, wid, "risk_signoff", "rita")

        # a refusal still reads clearly: failure messages travel encrypted and are decoded
        r = await api.post(
            f"/v1/use-cases/{wid}/gates/risk_signoff/decisions",
            json={"decision": "approve"},
            headers={**auth("rita"), **await seen(api, f"/v1/use-cases/{wid}", "rita")},
        )
        assert r.status_code == 409, r.text
        assert r.json()["detail"] != "Encoded failure"
        # hand over between workers only once this one finished its activities
        await no_pending_activities(temporal_env.client, wid)

    # rotate: the new key first, the old one still listed; a fresh worker replays the old
    # history (decrypting with k1) and writes what follows with k2
    rotated = codec_settings(f"{NEW},{OLD}", queue=old.task_queue)
    async with stack(rotated, store_url) as api:
        state = await approve(api, wid, "ops_handoff", "olga")
        state = await approve(api, wid, "go_live", "bo")
        assert state["stage"] == "live"
        assert state["title"] == TITLE

        events = await raw_history(old.temporal_address, wid)
        payloads = [p for e in events for p in payloads_in(e)]
        assert len(payloads) > 20
        for event in events:
            raw = event.SerializeToString()
            assert TITLE.encode() not in raw, event
            assert EVIDENCE_NAME.encode() not in raw, event
        # everything a use case wrote is encrypted (trace headers aside, none are sent here)
        assert {p.metadata["encoding"] for p in payloads} == {ENCODING}
        assert {p.metadata[KEY_ID] for p in payloads} == {b"k1", b"k2"}

        # the Temporal UI's call: protobuf JSON in and out, with a bearer token
        headers = {**auth("eve"), "Origin": UI_ORIGIN, "X-Namespace": "default"}
        r = await api.post("/codec/decode", json=as_json(payloads), headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == UI_ORIGIN
        decoded = r.json()
        assert len(decoded["payloads"]) == len(payloads)
        text = plaintext(decoded)
        assert TITLE.encode() in text
        assert EVIDENCE_NAME.encode() in text
        metadata = decoded["payloads"][0]["metadata"]
        assert base64.b64decode(metadata["encoding"]) == b"json/plain"

        # the CLI's call: `temporal workflow show --codec-endpoint … --codec-auth …`
        r = await api.post(
            "/codec/decode", json=as_json(payloads[:1]), headers={"Authorization": CODEC_AUTH}
        )
        assert r.status_code == 200, r.text

        # no credentials, or wrong ones: refused, and nothing decoded in the answer
        for bad in ({}, {"Authorization": "Bearer nobody"}, {"Authorization": "Bearer codec-x"}):
            r = await api.post(
                "/codec/decode", json=as_json(payloads), headers={**bad, "Origin": UI_ORIGIN}
            )
            assert r.status_code == 401, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert TITLE not in r.text
            # the UI may read the refusal (its origin is allowed), so it can say why
            assert r.headers["access-control-allow-origin"] == UI_ORIGIN

    # a codec that lost the old key says which key id it is missing
    only_new = codec_settings(NEW)
    async with api_client(only_new) as api:
        old_one = [p for p in payloads if p.metadata[KEY_ID] == b"k1"][:1]
        r = await api.post("/codec/decode", json=as_json(old_one), headers=auth("eve"))
        assert r.status_code == 422
        assert "'k1'" in r.json()["detail"]


async def test_without_keys_history_is_plain_json(
    temporal_env: WorkflowEnvironment, store_url: str
) -> None:
    """The control for the test above: the same search finds the title when encryption is off."""
    settings = settings_with(
        temporal_env, store_url, RELEASEGATE_TASK_QUEUE=f"plain-{uuid.uuid4().hex[:8]}"
    )
    client = await connect(settings)
    inp = make_input("low").model_copy(update={"title": TITLE})
    handle = await client.start_workflow(
        UseCaseRelease.run, inp, id=f"usecase-{inp.key}", task_queue=settings.task_queue
    )
    try:
        events = await raw_history(settings.temporal_address, handle.id)
        assert any(TITLE.encode() in e.SerializeToString() for e in events)
    finally:
        await handle.terminate("control over")


# --------------------------------------------------------------------------- endpoint


@pytest.fixture(scope="module")
async def codec_api(
    codec_settings: Callable[..., Settings],
) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(codec_settings(f"{NEW},{OLD}")) as api:
        yield api


async def test_encode_then_decode_round_trips(codec_api: httpx.AsyncClient) -> None:
    original = {
        "payloads": [
            {
                "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                "data": base64.b64encode(json.dumps({"actor": "rita"}).encode()).decode(),
            }
        ]
    }
    r = await codec_api.post("/codec/encode", json=original, headers=auth("rita"))
    assert r.status_code == 200, r.text
    sealed = r.json()
    meta = sealed["payloads"][0]["metadata"]
    assert base64.b64decode(meta["encoding"]) == ENCODING
    assert base64.b64decode(meta[KEY_ID]) == b"k2"  # the current key
    assert b"rita" not in base64.b64decode(sealed["payloads"][0]["data"])

    r = await codec_api.post("/codec/decode", json=sealed, headers=auth("rita"))
    assert r.json() == original

    r = await codec_api.post("/codec/encode", json=original)
    assert r.status_code == 401


async def test_bad_codec_bodies_are_client_errors(codec_api: httpx.AsyncClient) -> None:
    for body, status in (
        (b"not json", 400),
        (b"[]", 422),
        (b'{"payloads": {"a": 1}}', 422),
        (b'{"payloads": [{"data": 5}]}', 422),
        (b'{"payloads": [{"unknown": "x"}]}', 422),
    ):
        r = await codec_api.post(
            "/codec/decode",
            content=body,
            headers={**auth("rita"), "Content-Type": "application/json"},
        )
        assert r.status_code == status, (body, r.text)
    r = await codec_api.post("/codec/decode", json={"payloads": []}, headers=auth("rita"))
    assert r.json() == {"payloads": []}


async def test_cors_is_open_to_the_ui_origin_for_the_codec_only(
    codec_api: httpx.AsyncClient,
) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    r = await codec_api.options("/codec/decode", headers={**preflight, "Origin": UI_ORIGIN})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == UI_ORIGIN
    assert "x-namespace" in r.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in r.headers

    r = await codec_api.options(
        "/codec/decode", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
    r = await codec_api.post(
        "/codec/decode",
        json={"payloads": []},
        headers={**auth("rita"), "Origin": "https://evil.example"},
    )
    assert "access-control-allow-origin" not in r.headers

    # the rest of the API stays closed to the UI's origin
    r = await codec_api.options("/v1/use-cases", headers={**preflight, "Origin": UI_ORIGIN})
    assert "access-control-allow-origin" not in r.headers
    r = await codec_api.get("/v1/use-cases", headers={**auth("rita"), "Origin": UI_ORIGIN})
    assert "access-control-allow-origin" not in r.headers


async def test_codec_routes_exist_only_with_encryption_on(
    temporal_env: WorkflowEnvironment, store_url: str
) -> None:
    async with api_client(settings_with(temporal_env, store_url)) as api:
        r = await api.post("/codec/decode", json={"payloads": []}, headers=auth("rita"))
        assert r.status_code == 404


def test_ui_origin_follows_the_ui_settings() -> None:
    assert Settings().codec_ui_origin == "http://localhost:8233"
    assert Settings(TEMPORAL_UI_PORT=9000).codec_ui_origin == "http://localhost:9000"
    assert (
        Settings(TEMPORAL_UI_URL="https://temporal.example.com/ui/").codec_ui_origin
        == "https://temporal.example.com"
    )


# --------------------------------------------------------------------------- codec and keys


async def test_rotation_old_payloads_still_decrypt() -> None:
    before = EncryptionCodec(parse_keys(OLD))
    [sealed] = await before.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"42")])
    after = EncryptionCodec(parse_keys(f"{NEW},{OLD}"))
    assert after.current.kid == "k2"
    [opened] = await after.decode([sealed])
    assert opened.data == b"42"
    [resealed] = await after.encode([opened])
    assert resealed.metadata[KEY_ID] == b"k2"
    with pytest.raises(CodecError, match="key id 'k1'"):
        await EncryptionCodec(parse_keys(NEW)).decode([sealed])


async def test_tampering_is_detected() -> None:
    codec = EncryptionCodec(parse_keys(f"{NEW},{OLD}"))
    [sealed] = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"{}")])
    flipped = Payload()
    flipped.CopyFrom(sealed)
    flipped.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(CodecError, match="failed authentication"):
        await codec.decode([flipped])
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID] = b"k1"  # the key id is bound as associated data
    with pytest.raises(CodecError, match="failed authentication"):
        await codec.decode([relabelled])
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b"{}")
    assert (await codec.decode([plain])) == [plain]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("k1", "entry 1: expected kid:base64key"),
        ("k1:not-base64!", "key 'k1': not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "needs 32 bytes, got 5"),
        (f"{OLD},{OLD}", "listed twice"),
        (" , ", "lists no key"),
        (f"bad id:{new_key()}", "entry 1"),
    ],
)
def test_bad_keys_fail_at_start_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, spec: str, message: str
) -> None:
    monkeypatch.setenv("RELEASEGATE_CODEC_KEYS", spec)
    with pytest.raises(ConfigError, match="RELEASEGATE_CODEC_KEYS") as failed:
        load_settings()
    assert message in str(failed.value)
    secret = spec.partition(":")[2].split(",")[0]
    if len(secret) > 8:
        assert secret not in str(failed.value)


def test_keys_never_show_in_settings_repr() -> None:
    settings = Settings(RELEASEGATE_CODEC_KEYS=OLD)
    assert OLD.partition(":")[2] not in repr(settings)
    assert OLD.partition(":")[2] not in repr(parse_keys(OLD))


def test_launcher_wires_the_ui_codec_endpoint_when_encryption_is_on(tmp_path: Path) -> None:
    on = dev_server_argv("temporal", Settings(RELEASEGATE_CODEC_KEYS=OLD), tmp_path)
    at = on.index("--ui-codec-endpoint")
    assert on[at + 1] == "http://localhost:8000/codec"
    custom = Settings(RELEASEGATE_CODEC_KEYS=OLD, RELEASEGATE_API_PORT=8123)
    assert "http://localhost:8123/codec" in dev_server_argv("temporal", custom, tmp_path)
    assert "--ui-codec-endpoint" not in dev_server_argv("temporal", Settings(), tmp_path)
