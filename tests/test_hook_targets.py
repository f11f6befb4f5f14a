"""The hook allow-list as pure rules: entries, the static check, and the refused address ranges."""

from __future__ import annotations

import ipaddress

import pytest

from services.hook_targets import (
    HookAllowList,
    HookRefusal,
    HookTargetRefused,
    HostEntry,
    in_refused_range,
    system_resolver,
)
from services.settings import ConfigError, Settings, load_settings


@pytest.mark.parametrize(
    ("raw", "entry"),
    [
        ("deploy.example", HostEntry("deploy.example")),
        ("Deploy.Example.:8443", HostEntry("deploy.example", 8443)),
        ("127.0.0.1", HostEntry("127.0.0.1")),
        ("127.0.0.1:9000", HostEntry("127.0.0.1", 9000)),
        ("::1", HostEntry("::1")),
        ("[0:0::1]:9000", HostEntry("::1", 9000)),
        ("bücher.example", HostEntry("xn--bcher-kva.example")),
    ],
)
def test_entries_are_host_names_addresses_or_host_port(raw: str, entry: HostEntry) -> None:
    assert HostEntry.parse(raw) == entry


@pytest.mark.parametrize(
    "raw", ["https://deploy.example", "deploy.example:0", "h:70000", "*.example", "a@b", "[h]:1"]
)
def test_a_bad_entry_fails_the_settings_naming_it(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELEASEGATE_HOOK_ALLOWED_HOSTS", f"deploy.example, {raw}")
    with pytest.raises(ConfigError, match="RELEASEGATE_HOOK_ALLOWED_HOSTS") as caught:
        load_settings()
    assert repr(raw) in str(caught.value)


def test_the_setting_defaults_to_no_hook_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELEASEGATE_HOOK_ALLOWED_HOSTS", raising=False)
    settings = Settings()
    assert settings.hook_allow_list == HookAllowList()
    with pytest.raises(HookTargetRefused):
        settings.hook_allow_list.target("https://deploy.example/hook")


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("ftp://deploy.example/", HookRefusal.SCHEME),
        ("https://u:p@deploy.example/", HookRefusal.CREDENTIALS),
        ("https://deploy.example:444/", HookRefusal.NOT_LISTED),
        ("http://127.0.0.1:1/", HookRefusal.NOT_LISTED),
        ("http://169.254.169.254/", HookRefusal.NOT_LISTED),
    ],
)
def test_the_static_check(url: str, refusal: HookRefusal) -> None:
    allowed = HookAllowList.parse("deploy.example:443")
    with pytest.raises(HookTargetRefused) as caught:
        allowed.target(url)
    assert caught.value.refusal == refusal
    assert "127.0.0.1" not in str(caught.value)
    assert "169.254" not in str(caught.value)
    target = allowed.target("https://DEPLOY.example./hook")
    assert (target.host, target.port) == ("deploy.example", 443)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "169.254.169.254",
        "fe80::1",
        "10.0.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "fc00::1",
        "fd12:3456::1",
        "0.0.0.0",
        "::",
        "100.100.100.200",  # shared address space (a cloud metadata address)
        "224.0.0.1",
        "::ffff:127.0.0.1",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    ],
)
def test_refused_ranges(address: str) -> None:
    assert in_refused_range(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1", "::ffff:8.8.8.8"])
def test_public_addresses_are_not_refused(address: str) -> None:
    assert not in_refused_range(ipaddress.ip_address(address))


async def test_the_system_resolver_answers_addresses() -> None:
    addresses = await system_resolver("localhost", 80)
    assert addresses
    assert all(in_refused_range(a) for a in addresses)
