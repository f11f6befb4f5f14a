"""workflows.policy: the directory file (people, groups, credentials) and its lookups.

Expected values are written out from the shipped config/directory.example.yaml, never computed by
the code under test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.workflows.policy_cases import DIRECTORY
from workflows import policy
from workflows.policy import ConfigFileError

# --------------------------------------------------------------------------- load_directory


def test_shipped_directory() -> None:
    people = DIRECTORY.people
    assert len(people) >= 10
    assert {"dana", "tom", "bo", "olga", "rita", "raj", "eve", "sam", "priya", "lee"} <= set(people)
    assert DIRECTORY.members("risk-committee") == ["raj", "rita"]
    assert DIRECTORY.members("model-risk") == ["carla", "omar"]
    assert DIRECTORY.members("nobody-here") == []
    for person in people.values():
        assert person.slack_user_id, person.id
        assert person.token, person.id


@pytest.mark.parametrize(
    ("lookup", "expected"),
    [
        (lambda d: d.by_token("dev-rita"), "rita"),
        (lambda d: d.by_token("dev-nobody"), None),
        (lambda d: d.by_slack("U01RAJ"), "raj"),
        (lambda d: d.by_slack("U0NOPE"), None),
        (lambda d: d.by_email("bo@example.com"), "bo"),
        (lambda d: d.by_email("BO@Example.COM"), "bo"),
        (lambda d: d.by_email("nobody@example.com"), None),
        (lambda d: d.get("olga"), "olga"),
        (lambda d: d.get("ghost"), None),
    ],
)
def test_directory_lookups(lookup: Callable[[policy.Directory], Any], expected: str | None) -> None:
    found = lookup(DIRECTORY)
    assert (found.id if found else None) == expected


def person(pid: str, **changes: Any) -> dict[str, Any]:
    base = {
        "id": pid,
        "name": pid.title(),
        "email": f"{pid}@example.com",
        "slack_user_id": f"U{pid.upper()}",
        "groups": [],
        "token": f"dev-{pid}",
    }
    return {k: v for k, v in {**base, **changes}.items() if v is not ...}


INVALID_DIRECTORIES = [
    pytest.param(
        [person("ann"), person("ann", email="ann2@example.com")],
        ["people.1.id", "duplicate"],
        id="dup-id",
    ),
    pytest.param(
        [person("ann"), person("ben", token="dev-ann")],
        ["people.1.token", "duplicate"],
        id="dup-token",
    ),
    pytest.param(
        [person("ann"), person("ben", email="ann@example.com")],
        ["people.1.email", "duplicate"],
        id="dup-email",
    ),
    pytest.param(
        [person("ann"), person("ben", slack_user_id="UANN")],
        ["people.1.slack_user_id", "duplicate"],
        id="dup-slack",
    ),
    pytest.param([person("ann", email=...)], ["people.0.email"], id="missing-email"),
    pytest.param([person("ann", email="not-an-email")], ["people.0.email"], id="bad-email"),
    pytest.param([person("ann", name=...)], ["people.0.name"], id="missing-name"),
    pytest.param([person("ann", id="ann smith")], ["people.0.id"], id="bad-id"),
    pytest.param([person("ann", token="dev")], ["people.0.token"], id="short-token"),
    pytest.param([person("ann", team="x")], ["people.0.team"], id="unknown-key"),
    pytest.param([], ["people"], id="nobody"),
]


@pytest.mark.parametrize(("people", "fragments"), INVALID_DIRECTORIES)
def test_invalid_directory_names_file_and_field(
    tmp_path: Path, people: list[dict[str, Any]], fragments: list[str]
) -> None:
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump({"people": people}))
    with pytest.raises(ConfigFileError) as info:
        policy.load_directory(path)
    assert str(path) in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(b"people: [ {id: ann\n", "not valid YAML", id="bad-yaml"),
        pytest.param(b"", "(document)", id="empty"),
        pytest.param(b"persons: []\n", "persons", id="wrong-key"),
    ],
)
def test_unusable_directory_file(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "directory.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigFileError) as info:
        policy.load_directory(path)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_missing_directory_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigFileError, match="cannot read") as info:
        policy.load_directory(path)
    assert str(path) in str(info.value)


def test_emails_differing_only_in_case_are_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "directory.yaml"
    people = [person("ann"), person("ben", email="ANN@example.com")]
    path.write_text(yaml.safe_dump({"people": people}))
    with pytest.raises(ConfigFileError, match="email"):
        policy.load_directory(path)
