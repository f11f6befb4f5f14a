"""Which URLs a deploy or rollback hook may call: the operator's allow-list and the address rules.

A hook URL comes from whoever starts a use case (or from the policy file), and the worker calls
it from inside the operator's network. Unchecked, it lets any person probe loopback services,
the cloud metadata address or private ranges and read the outcome back from the ledger. So:

- a hook URL is ``http`` or ``https``, without credentials, to a host (or ``host:port``) listed
  in ``RELEASEGATE_HOOK_ALLOWED_HOSTS``; checked when a run starts and again before each call,
  so a policy-level URL or one an older run pinned is held to the same rule;
- before each call the host is resolved, and every address it resolves to must be public, or
  itself be listed: a loopback, link-local, private, shared, unspecified or multicast address
  that the operator did not list is refused (a listed name cannot be pointed at the metadata
  service by its DNS);
- the call goes to the address that was checked, so a second DNS answer (rebinding) cannot
  send it elsewhere.

The refusal texts are fixed: they name the rule, never a host, port or address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> every address the host resolves to; injectable so tests need no DNS
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

SCHEMES = {"http": 80, "https": 443}
ALLOWED_HOSTS_SETTING = "RELEASEGATE_HOOK_ALLOWED_HOSTS"
# IPv6 prefixes that carry an IPv4 address a gateway will reach for us
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class HookRefusal(StrEnum):
    """Why a hook URL is refused; the value is the fixed text a caller may see."""

    SCHEME = "a hook URL must be http:// or https://"
    NO_HOST = "a hook URL must name a host"
    CREDENTIALS = "a hook URL must not carry a user name or password"
    NOT_LISTED = f"the hook's host is not in {ALLOWED_HOSTS_SETTING}"
    PRIVATE_ADDRESS = (
        "the hook's host resolves to a loopback, link-local, private or unspecified address "
        f"that {ALLOWED_HOSTS_SETTING} does not list"
    )


class HookTargetRefused(ValueError):
    def __init__(self, refusal: HookRefusal) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal


def _unwrap(addr: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), else itself."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr.sixtofour is not None:
            return addr.sixtofour
        if addr in NAT64:
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if addr.scope_id:
            return ipaddress.IPv6Address(addr.compressed.split("%", 1)[0])
    return addr


def in_refused_range(addr: IPAddress) -> bool:
    """Loopback, link-local, private, shared (100.64/10), unspecified, reserved, documentation
    or multicast: anything that is not a public unicast address."""
    addr = _unwrap(addr)
    return not addr.is_global or addr.is_multicast


def _as_address(host: str) -> IPAddress | None:
    try:
        return _unwrap(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def canonical_host(host: str) -> str:
    """One spelling per host: an address in its compressed form (IPv4 for a mapped IPv6), a
    name in lower case, IDNA-encoded, without the root's trailing dot."""
    addr = _as_address(host)
    if addr is not None:
        return str(addr)
    return host.lower().rstrip(".")


@dataclass(frozen=True)
class HostEntry:
    """One allow-list entry: a host name or address, and a port (None: any port)."""

    host: str
    port: int | None = None

    @classmethod
    def parse(cls, raw: str) -> HostEntry:
        text = raw.strip()
        host, port = text, None
        if "://" in text:
            raise ValueError(f"{ALLOWED_HOSTS_SETTING}: {text!r} is a URL, not host or host:port")
        if text.startswith("["):  # [v6] or [v6]:port
            host, _, rest = text[1:].partition("]")
            if _as_address(host) is None or (rest and not rest.startswith(":")):
                raise ValueError(f"{ALLOWED_HOSTS_SETTING}: {text!r} is not [IPv6] or [IPv6]:port")
            if rest:
                port = _port(text, rest[1:])
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
            port = _port(text, port_text)
        if _as_address(host) is None:
            try:
                # the same parser the worker's HTTP client reads hook URLs with
                url = httpx.URL(f"http://{host}/")
            except (httpx.InvalidURL, UnicodeError):
                url = None
            if url is None or not url.host or url.userinfo or url.port is not None:
                raise ValueError(f"{ALLOWED_HOSTS_SETTING}: {text!r} is not host or host:port")
            host = url.raw_host.decode("ascii")
        if not host or any(c in host for c in "/@*"):
            raise ValueError(f"{ALLOWED_HOSTS_SETTING}: {text!r} is not host or host:port")
        return cls(canonical_host(host), port)

    def matches(self, host: str, port: int) -> bool:
        return self.host == host and self.port in (None, port)


def _port(raw: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{ALLOWED_HOSTS_SETTING}: {raw!r} has no valid port")
    return int(text)


@dataclass(frozen=True)
class HookTarget:
    """A hook URL that passed the allow-list: its parsed URL, canonical host and port."""

    url: httpx.URL
    host: str
    port: int

    @property
    def address(self) -> IPAddress | None:
        """The host when the URL names an address (no DNS needed)."""
        return _as_address(self.host)


@dataclass(frozen=True)
class PinnedCall:
    """Where the call really goes: the checked address, with the URL's host named in the
    ``Host`` header and in TLS (SNI and certificate checks)."""

    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, str]


@dataclass(frozen=True)
class HookAllowList:
    entries: tuple[HostEntry, ...] = ()

    @classmethod
    def parse(cls, raw: str) -> HookAllowList:
        """``RELEASEGATE_HOOK_ALLOWED_HOSTS``: comma-separated names, addresses, ``host:port``
        or ``[v6]:port``; empty allows no hook at all. ``ValueError`` names a bad entry."""
        return cls(tuple(HostEntry.parse(part) for part in raw.split(",") if part.strip()))

    def lists(self, host: str, port: int) -> bool:
        host = canonical_host(host)
        return any(entry.matches(host, port) for entry in self.entries)

    def target(self, url: str) -> HookTarget:
        """The static check (no DNS): scheme, no credentials, and a listed host and port.
        ``HookTargetRefused`` otherwise."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, UnicodeError, TypeError):
            raise HookTargetRefused(HookRefusal.NO_HOST) from None
        if parsed.scheme not in SCHEMES:
            raise HookTargetRefused(HookRefusal.SCHEME)
        if not parsed.host:
            raise HookTargetRefused(HookRefusal.NO_HOST)
        if parsed.userinfo:
            raise HookTargetRefused(HookRefusal.CREDENTIALS)
        host = canonical_host(parsed.raw_host.decode("ascii"))
        port = parsed.port or SCHEMES[parsed.scheme]
        if not self.lists(host, port):
            raise HookTargetRefused(HookRefusal.NOT_LISTED)
        return HookTarget(parsed, host, port)

    def check_addresses(self, target: HookTarget, addresses: Sequence[IPAddress]) -> IPAddress:
        """Every resolved address must be public or listed; the one to connect to."""
        for addr in addresses:
            if in_refused_range(addr) and not self.lists(str(_unwrap(addr)), target.port):
                raise HookTargetRefused(HookRefusal.PRIVATE_ADDRESS)
        return addresses[0]

    async def pin(self, url: str, resolve: Resolver) -> PinnedCall:
        """The full check for a call about to be made. ``HookTargetRefused`` for a URL the
        rules refuse; ``OSError`` when the host does not resolve."""
        target = self.target(url)
        literal = target.address
        addresses = [literal] if literal is not None else await resolve(target.host, target.port)
        if not addresses:
            raise OSError("the hook's host resolved to no address")
        addr = self.check_addresses(target, addresses)
        if literal is not None:
            return PinnedCall(target.url, {}, {})
        host_header = target.url.netloc.decode("ascii")
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        return PinnedCall(target.url.copy_with(host=str(addr)), {"Host": host_header}, extensions)


NO_HOOKS = HookAllowList()  # the default: no hook may be called until the operator lists hosts


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The host's addresses as the operating system resolves them, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    found: dict[IPAddress, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        found.setdefault(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]), None)
    return list(found)


__all__ = [
    "ALLOWED_HOSTS_SETTING",
    "HookAllowList",
    "HookRefusal",
    "HookTarget",
    "HookTargetRefused",
    "HostEntry",
    "NO_HOOKS",
    "IPAddress",
    "PinnedCall",
    "Resolver",
    "canonical_host",
    "in_refused_range",
    "system_resolver",
]
