"""The compose stack and the image: valid compose, real entry points, documented settings.

No Docker engine runs here. ``docker-compose config`` (the Debian package) validates the file;
the rest reads docker-compose.yml and the Dockerfile and checks them against the code.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.launcher import SA_TYPE_NAMES
from services.settings import DEMO_DIRECTORY, PROJECT_ROOT, ConfigError, Settings
from workflows import search

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
RELEASEGATE_SERVICES = ("migrate", "worker", "api")
ONE_SHOT = ("temporal-schema", "temporal-setup", "migrate")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def interpolate(value: str) -> str:
    """``${VAR:-default}`` → default: what the file gives when nothing is configured."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(str(v)) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


# --------------------------------------------------------------------------- docker-compose


def compose_binary() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is missing: `make system-deps` installs it (Debian)")
        pytest.skip("docker-compose is not installed")
    return binary


# the operator's directory file: the one setting the stack cannot default
OPERATOR_DIRECTORY = {"RELEASEGATE_DIRECTORY_FILE": "/srv/releasegate/people.yaml"}
DIRECTORY_IN_CONTAINER = "/etc/releasegate/directory.yaml"


def compose_config(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` with nothing configured but ``extra_env``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELEASEGATE_", "TEMPORAL_"))}
    return subprocess.run(  # noqa: S603
        [compose_binary(), "-f", str(COMPOSE), "config"],
        cwd=PROJECT_ROOT,
        env={**env, **extra_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def resolved_services(extra_env: dict[str, str]) -> dict[str, dict[str, Any]]:
    result = compose_config({**OPERATOR_DIRECTORY, **extra_env})
    assert result.returncode == 0, result.stderr
    found: dict[str, dict[str, Any]] = yaml.safe_load(result.stdout)["services"]
    return found


@pytest.mark.parametrize("extra_env", [{}, {"RELEASEGATE_API_PORTS": "8000-8002"}])
def test_docker_compose_config_accepts_the_file(extra_env: dict[str, str]) -> None:
    assert set(RELEASEGATE_SERVICES) <= set(resolved_services(extra_env))


def published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host address, host port) of each published port, in either of compose's spellings."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((str(port.get("host_ip", "")), str(port.get("published", ""))))
        else:
            host, _, _container = str(port).rpartition(":")
            address, _, host_port = host.rpartition(":")
            out.append((address, host_port))
    return out


def test_the_default_stack_is_production_on_loopback_with_the_operators_directory() -> None:
    svc = resolved_services({})
    for name in RELEASEGATE_SERVICES:
        env = svc[name]["environment"]
        assert env["RELEASEGATE_ENV"] == "production", name
        assert env["RELEASEGATE_DIRECTORY"] == DIRECTORY_IN_CONTAINER, name
        assert "directory.example" not in json.dumps(svc[name]), name
        mounts = [
            str(v) if isinstance(v, str) else f"{v['source']}:{v['target']}"
            for v in svc[name]["volumes"]
        ]
        assert any(
            m.startswith(
                f"{OPERATOR_DIRECTORY['RELEASEGATE_DIRECTORY_FILE']}:{DIRECTORY_IN_CONTAINER}"
            )
            for m in mounts
        ), mounts
    for name, spec in svc.items():
        for address, _port in published(spec):
            assert address == "127.0.0.1", (name, spec["ports"])
    assert published(svc["api"]) == [("127.0.0.1", "8000")]


def test_the_operator_chooses_to_publish_the_api_on_every_interface() -> None:
    svc = resolved_services({"RELEASEGATE_BIND": "0.0.0.0"})
    assert published(svc["api"]) == [("0.0.0.0", "8000")]


def test_the_stack_does_not_start_without_a_directory_file() -> None:
    result = compose_config({})
    assert result.returncode != 0
    assert "RELEASEGATE_DIRECTORY_FILE" in result.stderr


# --------------------------------------------------------------------------- entry points


def check_python_command(argv: list[str]) -> str:
    """``python -m <module> …`` must name something this project can really run."""
    assert argv[:2] == ["python", "-m"], argv
    module = argv[2]
    if module == "uvicorn":
        assert importlib.util.find_spec("uvicorn") is not None
        assert "--factory" in argv, "create_app is a factory"
        target = next(a for a in argv[3:] if ":" in a and not a.startswith("-"))
        module_name, _, attr = target.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        assert callable(factory)
        # uvicorn calls the factory with no arguments
        assert all(
            p.default is not inspect.Parameter.empty
            for p in inspect.signature(factory).parameters.values()
        )
        return target
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{module} is not importable"
    if spec.submodule_search_locations is not None:  # a package: runs its __main__
        assert importlib.util.find_spec(f"{module}.__main__") is not None, module
    else:
        assert spec.origin is not None
        assert 'if __name__ == "__main__":' in Path(spec.origin).read_text(), module
    return module


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("migrate", "services.store.migrate"),
        ("worker", "services.worker"),
        ("api", "services.api.app:create_app"),
    ],
)
def test_each_service_runs_a_real_entry_point(service: str, expected: str) -> None:
    spec = services()[service]
    assert "entrypoint" not in spec  # the image's python runs the command
    assert check_python_command([str(a) for a in spec["command"]]) == expected


COMMAND_KEYS_IN_CONTAINER = "/etc/releasegate/command-keys.json"


def compose_api_environment(monkeypatch: pytest.MonkeyPatch, directory_file: Path) -> None:
    """The api container's environment, here: the image's /app is this checkout, and the
    operator's directory and command-keys files are mounted where the stack expects them."""
    keys = os.environ["RELEASEGATE_COMMAND_KEYS"]  # the suite's pair stands in for the secret
    for name in os.environ:
        if name.startswith(("RELEASEGATE_", "TEMPORAL_", "SLACK_")):
            monkeypatch.delenv(name)
    for name, value in environment(services()["api"]).items():
        value = value.replace("/app/", f"{PROJECT_ROOT}/")
        value = value.replace(DIRECTORY_IN_CONTAINER, str(directory_file))
        monkeypatch.setenv(name, value.replace(COMMAND_KEYS_IN_CONTAINER, keys))


def test_the_compose_stack_mounts_the_command_keys() -> None:
    for name in ("api", "worker"):
        service = services()[name]
        assert environment(service)["RELEASEGATE_COMMAND_KEYS"] == COMMAND_KEYS_IN_CONTAINER
        assert any(COMMAND_KEYS_IN_CONTAINER in str(v) for v in service["volumes"])


def test_the_api_factory_builds_under_the_compose_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from services.api.app import create_app

    people = yaml.safe_load(DEMO_DIRECTORY.read_text())
    for person in people["people"]:
        person.pop("token", None)  # production signs people in with OIDC
    directory_file = tmp_path / "people.yaml"
    directory_file.write_text(yaml.safe_dump(people))
    compose_api_environment(monkeypatch, directory_file)
    app = create_app()
    assert "/healthz" in app.openapi()["paths"]
    assert "/healthz" in " ".join(services()["api"]["healthcheck"]["test"])


def test_the_api_refuses_to_start_on_the_demo_directory_under_compose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.api.app import create_app

    compose_api_environment(monkeypatch, DEMO_DIRECTORY)
    with pytest.raises(ConfigError, match="demo directory"):
        create_app()


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def stages() -> dict[str, list[tuple[str, str]]]:
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for op, args in dockerfile_instructions():
        if op == "FROM":
            image, _, name = args.partition(" AS ")
            current = [(op, image.strip())]
            result[name.strip() or image.strip()] = current
        else:
            current.append((op, args))
    return result


def test_dockerfile_is_multi_stage_non_root_and_healthchecked() -> None:
    found = stages()
    assert list(found) == ["builder", "runtime"]
    builder, runtime = found["builder"], found["runtime"]
    assert runtime[0] == ("FROM", "python:3.11-slim")
    assert any(op == "RUN" and "pip install" in args for op, args in builder)
    assert any(op == "COPY" and args.startswith("--from=builder") for op, args in runtime)
    assert not any(op == "RUN" and "pip install" in args for op, args in runtime)

    users = [args for op, args in runtime if op == "USER"]
    assert users, "the runtime stage must switch to a non-root user"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")

    healthchecks = [args for op, args in runtime if op == "HEALTHCHECK"]
    assert healthchecks
    assert "/healthz" in healthchecks[-1]

    cmd = [args for op, args in runtime if op == "CMD"][-1]
    assert check_python_command(json.loads(cmd)) == "services.api.app:create_app"

    for name in RELEASEGATE_SERVICES:
        build = services()[name]["build"]
        assert build["target"] in found
        assert (PROJECT_ROOT / build["context"] / "Dockerfile").resolve() == DOCKERFILE


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    for entry in (".env", ".venv", ".data", ".git"):
        assert entry in ignored


# --------------------------------------------------------------------------- settings


def setting_names() -> set[str]:
    return {f.alias for f in Settings.model_fields.values() if f.alias}


@pytest.mark.parametrize("service", RELEASEGATE_SERVICES)
def test_every_env_var_is_a_documented_setting(service: str) -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    names = set(environment(services()[service]))
    assert names, service
    unknown = names - setting_names()
    assert not unknown, f"{service}: not settings of services/settings.py: {sorted(unknown)}"
    undocumented = {n for n in names if f"`{n}`" not in readme}
    assert not undocumented, f"{service}: not documented in README.md: {sorted(undocumented)}"


def test_compose_defaults_make_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith(("RELEASEGATE_", "TEMPORAL_", "SLACK_")):
            monkeypatch.delenv(name)
    env = environment(services()["worker"])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.temporal_address == "temporal:7233"
    assert settings.resolved_database_url.startswith("postgresql+asyncpg://")
    assert not settings.oidc_enabled
    assert settings.cors_origin_list == []


# --------------------------------------------------------------------------- Temporal


def test_temporal_is_a_server_on_postgresql_not_the_dev_server() -> None:
    svc = services()
    text = COMPOSE.read_text()
    assert "auto-setup" not in text
    assert "start-dev" not in text
    temporal = svc["temporal"]
    assert temporal["image"].startswith("temporalio/server:")
    env = environment(temporal)
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgresql"
    assert env.get("ENABLE_ES", "false") == "false"  # visibility on PostgreSQL too
    assert depends_on(temporal) == {"temporal-schema": "service_completed_successfully"}
    assert svc["temporal-ui"]["image"].startswith("temporalio/ui:")


def mounted_script(service: dict[str, Any]) -> Path:
    """The script a job's entrypoint runs, found through its bind mount."""
    script = service["entrypoint"][-1]
    for volume in service["volumes"]:
        host, container = volume.split(":")[:2]
        if script.startswith(container + "/"):
            path = PROJECT_ROOT / host / script[len(container) + 1 :]
            assert path.exists(), path
            return path
    raise AssertionError(f"{script} is not mounted")


def test_schema_job_sets_up_both_databases() -> None:
    job = services()["temporal-schema"]
    assert job["image"].startswith("temporalio/admin-tools:")
    assert depends_on(job) == {"postgresql": "service_healthy"}
    script = mounted_script(job).read_text()
    for step in ("create", "setup-schema", "update-schema"):
        assert f'temporal-sql-tool --db "$db" {step}' in script
    assert 'setup "${TEMPORAL_DB:-temporal}" temporal' in script
    assert 'setup "${TEMPORAL_VISIBILITY_DB:-temporal_visibility}" visibility' in script


def test_search_attribute_job_registers_workflows_search_all() -> None:
    job = services()["temporal-setup"]
    assert job["image"].startswith("temporalio/admin-tools:")
    assert depends_on(job) == {"temporal": "service_healthy"}
    script = mounted_script(job).read_text()
    block = re.search(r'SEARCH_ATTRIBUTES="\n(.*?)"', script, re.S)
    assert block is not None
    declared = dict(line.split("=") for line in block.group(1).split())
    expected = {
        key.name: SA_TYPE_NAMES[key.indexed_value_type.value]  # type: ignore[index]
        for key in search.ALL
    }
    assert declared == expected
    assert "temporal operator search-attribute create" in script


# --------------------------------------------------------------------------- wiring


def test_start_order_is_enforced_by_conditions() -> None:
    svc = services()
    for name in ("api", "worker"):
        assert depends_on(svc[name]) == {
            "migrate": "service_completed_successfully",
            "temporal-setup": "service_completed_successfully",
        }
    assert depends_on(svc["migrate"]) == {"postgresql": "service_healthy"}
    for name, spec in svc.items():
        for dep, condition in depends_on(spec).items():
            assert condition in CONDITIONS, (name, dep)
            if condition == "service_healthy":
                assert "healthcheck" in svc[dep], f"{name} waits for {dep}'s health check"
            if condition == "service_completed_successfully":
                assert dep in ONE_SHOT
    for name in ONE_SHOT:
        assert svc[name]["restart"] == "no", name
    assert "healthcheck" in svc["worker"]
    assert "healthcheck" in svc["api"]


def test_bind_mounts_exist() -> None:
    for name, spec in services().items():
        for volume in spec.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("."):
                assert (PROJECT_ROOT / host).exists(), (name, host)
