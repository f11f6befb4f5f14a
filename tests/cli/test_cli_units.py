"""CLI pieces that need no stack: configuration precedence, problem messages, exit codes for
answers a current server never gives (an older server without the live verbs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from services.cli import main as cli_main
from services.cli.client import Api, exit_code_for, problem_message
from services.cli.config import DEFAULT_URL, resolve_config
from services.cli.errors import CliError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_config_precedence(tmp_path: Path) -> None:
    home = tmp_path / "home"
    default = write(home / ".config" / "releasegate" / "config.toml", 'url = "http://file:1"\n')
    env = {"HOME": str(home)}
    assert resolve_config(env=env).url == "http://file:1"
    assert resolve_config(env=env).token is None

    env["RELEASEGATE_URL"] = "http://env:2/"
    env["RELEASEGATE_TOKEN"] = "dev-env"
    cfg = resolve_config(env=env)
    assert (cfg.url, cfg.token, cfg.url_from) == ("http://env:2", "dev-env", "env")

    explicit = write(tmp_path / "x.toml", 'url = "http://explicit:3"\ntoken = "dev-x"\n')
    cfg = resolve_config(config_path=explicit, env=env)
    assert (cfg.url, cfg.token) == ("http://explicit:3", "dev-x")

    cfg = resolve_config(url="http://flag:4", token="dev-flag", config_path=explicit, env=env)
    assert (cfg.url, cfg.token, cfg.token_from) == ("http://flag:4", "dev-flag", "flag")

    default.unlink()
    assert resolve_config(env={"HOME": str(home)}).url == DEFAULT_URL
    xdg = write(tmp_path / "xdg" / "releasegate" / "config.toml", 'token = "dev-xdg"\n')
    assert resolve_config(env={"XDG_CONFIG_HOME": str(xdg.parents[1])}).token == "dev-xdg"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('url = "ftp://x"\n', "not an http(s) URL"),
        ('colour = "blue"\n', "unknown key(s) colour"),
        ("token = 3\n", "token must be a string"),
        ("url = [\n", "not valid TOML"),
    ],
)
def test_bad_config_is_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "c.toml", text)
    with pytest.raises(CliError) as caught:
        resolve_config(config_path=path, env={})
    assert caught.value.code == 2
    assert message in caught.value.message


def test_exit_codes_per_status() -> None:
    statuses = (403, 409, 412, 422, 428, 404, 503, 400, 401, 500, 502)
    assert [exit_code_for(s) for s in statuses] == [
        3, 3, 3, 3, 3, 4, 5, 2, 2, 1, 1,
    ]  # fmt: skip


def test_problem_message_reads_title_and_detail() -> None:
    problem = httpx.Response(
        403,
        json={"type": "urn:x", "title": "Forbidden", "status": 403, "detail": "not eligible"},
    )
    assert problem_message(problem) == "Forbidden: not eligible"
    plain = httpx.Response(502, text="<html>bad gateway</html>")
    assert problem_message(plain) == "Bad Gateway: <html>bad gateway</html>"
    assert problem_message(httpx.Response(404, json={"detail": "Not Found"})) == (
        "Not Found: Not Found"
    )


def old_server(request: httpx.Request) -> httpx.Response:
    """A ReleaseGate API from before live operation and ledger verification."""
    path = request.url.path
    if path.endswith("/suspend"):
        return httpx.Response(
            404, json={"title": "Not found", "status": 404, "detail": "Not Found"}
        )
    if path.endswith("/ledger/verify"):
        return httpx.Response(405, json={"title": "Method not allowed", "detail": "nope"})
    if path.startswith("/v1/use-cases/"):
        return httpx.Response(
            404, json={"title": "Not found", "status": 404, "detail": "no use case 'x'"}
        )
    return httpx.Response(503, json={"title": "Service unavailable", "detail": "Temporal down"})


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    def api(base_url: str, token: str | None, **kwargs: Any) -> Api:
        return Api(base_url, token, transport=httpx.MockTransport(old_server))

    monkeypatch.setattr(cli_main, "Api", api)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("RELEASEGATE_TOKEN", "dev-dana")
    return CliRunner()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["suspend", "kyc", "--reason", "x"], 4, "Not supported: this server has no POST"),
        (["audit", "verify", "kyc"], 4, "Not supported: this server has no GET"),
        (["status", "kyc"], 4, "Not found: no use case 'x'"),
        (["pending"], 5, "Service unavailable: Temporal down"),
    ],
)
def test_answers_of_an_older_or_failing_server(
    runner: CliRunner, args: list[str], code: int, message: str
) -> None:
    result = runner.invoke(cli_main.app, args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


A, B, C = "a" * 64, "b" * 64, "c" * 64
GATE_STATE = {
    "key": "kyc",
    "stage": "risk_signoff",
    "open_gate": {"gate": "risk_signoff", "evidence_digests": [B, A]},
    "evidence": [
        {"kind": "evaluation_report", "name": "eval.pdf", "sha256": A},
        {"kind": "risk_assessment", "name": "risk.pdf", "sha256": B},
    ],
}


def recording_server(
    sent: list[httpx.Request], state: dict[str, Any] | None = None
) -> httpx.MockTransport:
    """Answers a use case's state with ``state`` (``GATE_STATE``) and records every request."""

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=state or GATE_STATE)

    return httpx.MockTransport(handle)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[httpx.Request]:
    sent: list[httpx.Request] = []

    def api(base_url: str, token: str | None, **kwargs: Any) -> Api:
        return Api(base_url, token, transport=recording_server(sent))

    monkeypatch.setattr(cli_main, "Api", api)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("RELEASEGATE_TOKEN", "dev-rita")
    monkeypatch.setenv("COLUMNS", "200")
    return sent


def test_an_approval_shows_the_evidence_and_sends_the_digests_it_showed(
    recorded: list[httpx.Request],
) -> None:
    result = CliRunner().invoke(cli_main.app, ["decide", "kyc", "risk_signoff", "approve"])
    assert result.exit_code == 0, result.output
    for shown in ("evaluation_report", "eval.pdf", A[:12], "risk_assessment", "risk.pdf", B[:12]):
        assert shown in result.output
    read, decided = recorded
    assert (read.method, read.url.path) == ("GET", "/v1/use-cases/kyc")
    assert (decided.method, decided.url.path) == (
        "POST",
        "/v1/use-cases/kyc/gates/risk_signoff/decisions",
    )
    assert json.loads(decided.content) == {
        "decision": "approve",
        "comment": "",
        "evidence_digests": [A, B],
    }


def test_other_decisions_read_and_show_nothing_first(recorded: list[httpx.Request]) -> None:
    result = CliRunner().invoke(
        cli_main.app, ["decide", "kyc", "risk_signoff", "reject", "-m", "no"]
    )
    assert result.exit_code == 0, result.output
    [decided] = recorded
    assert json.loads(decided.content) == {"decision": "reject", "comment": "no"}
    assert "eval.pdf" not in result.output


# no gate open: the state lists only the latest item (C) but names every digest its ETag covers:
# an earlier item (A), the latest (C) and the bundle's (B)
NO_GATE_STATE = {
    "key": "kyc",
    "stage": "validation",
    "open_gate": None,
    "evidence": [{"kind": "dpia", "name": "dpia.pdf", "sha256": C}],
    "evidence_count": 2,
    "evidence_digests": [C, B, A],
    "bundle_digest": B,
}


@pytest.mark.parametrize(
    ("state", "sent_digests"),
    [
        (NO_GATE_STATE, [A, B, C]),
        # an older worker's state names no digests and lists every item
        ({**NO_GATE_STATE, "evidence_digests": []}, [C]),
    ],
)
def test_with_no_gate_open_an_approval_names_the_state_s_digest_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, state: dict[str, Any], sent_digests: list[str]
) -> None:
    sent: list[httpx.Request] = []

    def api(base_url: str, token: str | None, **kwargs: Any) -> Api:
        return Api(base_url, token, transport=recording_server(sent, state))

    monkeypatch.setattr(cli_main, "Api", api)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("RELEASEGATE_TOKEN", "dev-rita")
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(cli_main.app, ["decide", "kyc", "risk_signoff", "approve"])
    assert result.exit_code == 0, result.output
    _, decided = sent
    assert json.loads(decided.content)["evidence_digests"] == sent_digests
    # what the approval names is what it showed: the listed item, then the others by digest
    assert "dpia.pdf" in result.output
    for digest in sent_digests:
        assert digest[:12] in result.output
    if B in sent_digests:
        assert "bundle" in result.output
        assert "(earlier item)" in result.output
