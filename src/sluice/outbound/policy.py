"""The egress policy every outbound call passes: which hosts, which addresses, which proxy.

One :class:`EgressPolicy` per app, read from the ``outbound:`` section::

    outbound:
      allow: ["hooks.example.com", "*.partner.example", "api.example.com:8443"]
      tenants:                      # optional: hosts only some tenants' events may reach
        acme: {allow: ["hooks.acme.example"]}
      allow_private: ["127.0.0.1/32"]   # local development: the demo's loopback services
      proxy: http://egress-proxy.internal:3128   # optional HTTP CONNECT proxy for everything
      timeout_s: 10
      max_response_bytes: 4194304
      max_redirects: 3

A call is admitted in two steps, and every call site runs both through this module:

1. :meth:`EgressPolicy.admit` reads the URL with the parser the HTTP client uses (yarl) and
   refuses what is ambiguous before any lookup: other schemes, user-info
   (``http://allowed.example@127.0.0.1/``), percent-encoded or non-ASCII leftovers, IPv6 zone
   ids, and numeric IPv4 spellings other than the dotted quad (``2130706433``, ``0177.0.0.1``,
   ``0x7f.1``, ``127.1``), which resolvers read as addresses. The host (``host`` or
   ``host:port``, one trailing dot ignored) must then be on the allowlist.
2. :meth:`EgressPolicy.resolve` resolves the name once and checks every address it got:
   loopback, private, link-local (the cloud metadata addresses ``169.254.169.254`` and
   ``fd00:ec2::254`` among them), CGNAT ``100.64.0.0/10``, multicast, unspecified, reserved,
   documentation and benchmark ranges, and the IPv6 ranges that carry an IPv4 address
   (IPv4-mapped, IPv4-compatible, 6to4, NAT64, Teredo) are refused unless ``allow_private``
   names a network holding them. One refused address refuses the name. The connection is
   then opened to the checked address (see :mod:`sluice.outbound.connector` and
   :mod:`sluice.outbound.http1`), with the name kept for TLS (SNI, certificate) and the
   ``Host`` header, so a second answer of the resolver (DNS rebinding) is never used.

Redirects are admitted hop by hop like the first request. ``sluice egress check URL`` runs
:meth:`EgressPolicy.check`, the same two steps, and prints the decision.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from yarl import URL

from sluice.errors import ConfigError, StepError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The refused ranges, each with the reason a refusal names. Order matters: the first match is
# the reason given (the IPv4-carrying IPv6 ranges come before the wider ones holding them).
_DENIED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/32", "unspecified address"),
    ("0.0.0.0/8", "'this network' address (0.0.0.0/8)"),
    ("10.0.0.0/8", "private address (10.0.0.0/8)"),
    ("100.64.0.0/10", "carrier-grade NAT address (100.64.0.0/10)"),
    ("127.0.0.0/8", "loopback address"),
    ("169.254.0.0/16", "link-local address (cloud metadata lives here)"),
    ("172.16.0.0/12", "private address (172.16.0.0/12)"),
    ("192.0.0.0/24", "IETF protocol assignment (192.0.0.0/24)"),
    ("192.0.2.0/24", "documentation address (192.0.2.0/24)"),
    ("192.88.99.0/24", "6to4 relay anycast address (192.88.99.0/24)"),
    ("192.168.0.0/16", "private address (192.168.0.0/16)"),
    ("198.18.0.0/15", "benchmarking address (198.18.0.0/15)"),
    ("198.51.100.0/24", "documentation address (198.51.100.0/24)"),
    ("203.0.113.0/24", "documentation address (203.0.113.0/24)"),
    ("224.0.0.0/4", "multicast address"),
    ("255.255.255.255/32", "broadcast address"),
    ("240.0.0.0/4", "reserved address (240.0.0.0/4)"),
    ("::/128", "unspecified address"),
    ("::1/128", "loopback address"),
    ("::ffff:0:0/96", "IPv4-mapped IPv6 address (hides an IPv4 address)"),
    ("::ffff:0:0:0/96", "IPv4-translated IPv6 address (hides an IPv4 address)"),
    ("::/96", "IPv4-compatible IPv6 address (hides an IPv4 address)"),
    ("64:ff9b::/96", "NAT64 address (hides an IPv4 address)"),
    ("64:ff9b:1::/48", "local-use NAT64 address (hides an IPv4 address)"),
    ("100::/64", "discard-only address (100::/64)"),
    ("2001::/32", "Teredo address (hides an IPv4 address)"),
    ("2001:2::/48", "benchmarking address (2001:2::/48)"),
    ("2001:db8::/32", "documentation address (2001:db8::/32)"),
    ("2001::/23", "IETF protocol assignment (2001::/23)"),
    ("2002::/16", "6to4 address (hides an IPv4 address)"),
    ("3fff::/20", "documentation address (3fff::/20)"),
    ("5f00::/16", "segment routing address (5f00::/16)"),
    ("fc00::/7", "unique-local (private) IPv6 address (fd00:ec2::254, cloud metadata, is one)"),
    ("fe80::/10", "link-local address"),
    ("fec0::/10", "site-local address (deprecated)"),
    ("ff00::/8", "multicast address"),
)
_DENIED_NETS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), why) for net, why in _DENIED
)
_DENIED_BOUNDS: tuple[tuple[int, int, int, str], ...] = tuple(
    (net.version, int(net.network_address), int(net.broadcast_address), why)
    for net, why in _DENIED_NETS
)
# The whole IPv6 space outside 2000::/3 is unassigned or special: refused as reserved.
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
#: The ``allow_private`` entries of local development: this machine's loopback addresses.
LOOPBACK = ("127.0.0.1/32", "::1/128")
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_NUMERIC_PART = re.compile(r"0x[0-9a-f]*|[0-9]+", re.IGNORECASE)


class EgressDeniedError(StepError):
    """The egress policy refused an outbound call; ``reason`` says why. Never retryable: the
    same URL is refused the same way next time."""

    def __init__(self, url: str | URL, reason: str) -> None:
        super().__init__(f"egress denied for {url}: {reason}", retryable=False)
        self.url = str(url)
        self.reason = reason


class Resolver(Protocol):
    """Turns a host name into IP addresses (as text); tests inject a local one."""

    async def resolve(self, host: str, port: int) -> Sequence[str]:
        """Every address ``host`` resolves to; an OSError when it resolves to none."""
        ...


class SystemResolver:
    """The operating system's resolver (``getaddrinfo``), run by the event loop."""

    async def resolve(self, host: str, port: int) -> Sequence[str]:
        """Every address of ``host`` for a TCP connection to ``port``."""
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class Target:
    """An admitted URL's endpoint: scheme, host (lower case, no trailing dot) and port."""

    scheme: str
    host: str
    port: int

    @property
    def literal(self) -> IPAddress | None:
        """The host as an IP address, when it is written as one."""
        if ":" not in self.host and not self.host.replace(".", "").isdigit():
            return None  # a name: spare the parser's exception
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to "may this URL be called?": ``allowed``, and ``reason`` either way."""

    url: str
    allowed: bool
    reason: str
    host: str = ""
    port: int = 0
    addresses: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The decision as JSON-ready data."""
        return {
            "url": self.url, "allowed": self.allowed, "reason": self.reason,
            "host": self.host, "port": self.port, "addresses": list(self.addresses),
        }  # fmt: skip


def address_denial(address: IPAddress, allow_private: Iterable[IPNetwork] = ()) -> str | None:
    """Why ``address`` may not be called, or None when it may."""
    version, number = address.version, int(address)
    for net in allow_private:
        if net.version == version and _low(net) <= number <= _high(net):
            return None
    # Integer bounds rather than ``address in network``: the check runs on every connection
    # (and every request's URL, when written as an address), and this is ~20 times cheaper.
    for net_version, low, high, why in _DENIED_BOUNDS:
        if net_version == version and low <= number <= high:
            return why
    if version == 6 and not _low(_GLOBAL_UNICAST) <= number <= _high(_GLOBAL_UNICAST):
        return "reserved IPv6 address (outside 2000::/3)"
    return None


def _low(net: IPNetwork) -> int:
    return int(net.network_address)


def _high(net: IPNetwork) -> int:
    return int(net.broadcast_address)


def _numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """What ``inet_aton`` makes of a host written in the legacy numeric forms (decimal,
    octal, hex, one to four parts), or None when it is not one of them."""
    if not host[:1].isdigit():  # every numeric form starts with a digit (hex with "0x")
        return None
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.fullmatch(p) for p in parts):
        return None
    try:
        values = [
            int(p, 16) if p.lower().startswith("0x") else int(p, 8) if len(p) > 1 and
            p.startswith("0") else int(p)
            for p in parts
        ]  # fmt: skip
    except ValueError:
        return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for index, value in enumerate(head):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


# Hosts repeat (the same endpoints, call after call): their analysis is kept, bounded.
@functools.lru_cache(maxsize=4096)
def _host_form(host: str) -> tuple[IPAddress | None, str | None]:
    """The host as an address when written as one, and why its form is refused, if it is."""
    if ":" in host:
        return _ipv6(host), None  # yarl accepts only valid IPv6 between brackets
    numeric = _numeric_ipv4(host)
    if numeric is not None:
        if str(numeric) != host:
            return None, f"{host!r} is a non-canonical IPv4 form (it reads as {numeric})"
        return numeric, None
    if not all(_LABEL.fullmatch(p) for p in host.split(".")):
        return None, f"{host!r} is not a valid host name"
    if host.rsplit(".", 1)[-1].isdigit():
        return None, f"{host!r} ends in a numeric label"
    return None, None


@functools.lru_cache(maxsize=4096)
def _denial(address: IPAddress, allow_private: tuple[IPNetwork, ...]) -> str | None:
    return address_denial(address, allow_private)


def _ipv6(host: str) -> ipaddress.IPv6Address | None:
    try:
        return ipaddress.IPv6Address(host)
    except ValueError:
        return None


def _pattern_matches(pattern: str, host: str, port: int) -> bool:
    if pattern.startswith("["):  # an IPv6 address, [addr] or [addr]:port, kept canonical
        name, _, rest = pattern[1:].partition("]")
        want_port = rest[1:]
    else:
        name, _, want_port = pattern.partition(":")
    if want_port and int(want_port) != port:
        return False
    if name.startswith("*."):
        return host.endswith(name[1:]) and len(host) > len(name) - 1
    return host == name


def _normal_pattern(raw: str, where: str) -> str:
    """An allowlist entry in the form matching compares: lower case, no trailing dot, an
    IPv6 address canonical and in brackets (``[::1]``, ``[::1]:8080``)."""
    text = raw.strip().lower()
    bad = ConfigError(f"{where}: {raw!r} is not a host, host:port, [IPv6] or [IPv6]:port")
    if text.startswith("[") and "]" not in text:
        raise bad
    if text.startswith("[") or text.count(":") > 1:
        inner, _, rest = text[1:].partition("]") if text.startswith("[") else (text, "", "")
        address = _ipv6(inner)
        if address is None or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            raise bad
        return f"[{address}]{rest}"
    name, sep, port = text.partition(":")
    name = name[:-1] if name.endswith(".") else name
    if not name or (sep and not port.isdigit()) or any(c in name for c in "/@ ?#[]%\\"):
        raise bad
    return f"{name}{sep}{port}"


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Which hosts and addresses outbound calls may reach, and through which proxy.

    The default policy allows no host and no private address: call sites narrow it to their
    own endpoint with :meth:`only` (a model client may reach its ``base_url`` and nothing
    else, redirects included).
    """

    allow: frozenset[str] = frozenset()
    tenants: Mapping[str, frozenset[str]] = field(default_factory=dict)
    allow_private: tuple[IPNetwork, ...] = ()
    proxy: str | None = None
    timeout_s: float = 10.0
    max_response_bytes: int = 4 * 1024 * 1024
    max_redirects: int = 3
    resolver: Resolver = field(default_factory=SystemResolver, compare=False)

    # building ---------------------------------------------------------------------------------
    @classmethod
    def loopback(cls, **values: Any) -> EgressPolicy:
        """A policy that also allows this machine's loopback addresses (127.0.0.1, ::1): for
        local development and tests against local servers, as ``allow_private`` would."""
        nets = tuple(ipaddress.ip_network(net) for net in LOOPBACK)
        return cls(allow_private=nets, **values)

    @classmethod
    def from_config(
        cls,
        raw: Any,
        *,
        extra_allow: Iterable[str] = (),
        resolver: Resolver | None = None,
        where: str = "outbound",
    ) -> EgressPolicy:
        """The policy of an ``outbound:`` section (None: the default); a ConfigError lists
        every problem with its path."""
        raw = {} if raw is None else raw
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: expected a mapping (allow, allow_private, proxy, ...)")
        problems: list[str] = []
        known = {"allow", "tenants", "allow_private", "proxy", "timeout_s",
                 "max_response_bytes", "max_redirects"}  # fmt: skip
        problems += [f"{where}.{key}: unknown key" for key in sorted(set(raw) - known)]
        allow = set(_patterns(raw.get("allow", []), f"{where}.allow", problems))
        allow |= set(_patterns(list(extra_allow), f"{where}.allow", problems))
        tenants: dict[str, frozenset[str]] = {}
        raw_tenants = raw.get("tenants", {})
        if not isinstance(raw_tenants, Mapping):
            problems.append(f"{where}.tenants: a mapping of tenant to {{allow: [...]}}")
        else:
            for tenant, entry in raw_tenants.items():
                path = f"{where}.tenants.{tenant}"
                if not isinstance(entry, Mapping):
                    problems.append(f"{path}: expected {{allow: [host or host:port, ...]}}")
                    continue
                extra = sorted(set(entry) - {"allow"})
                if extra:
                    problems += [f"{path}.{key}: unknown key (known: allow)" for key in extra]
                    continue
                tenants[str(tenant)] = frozenset(
                    _patterns(entry.get("allow", []), f"{path}.allow", problems)
                )
        private: list[IPNetwork] = []
        raw_private = raw.get("allow_private", [])
        if not isinstance(raw_private, list):
            problems.append(f"{where}.allow_private: a list of networks (127.0.0.1/32, ...)")
        else:
            for index, net in enumerate(raw_private):
                try:
                    private.append(ipaddress.ip_network(str(net), strict=True))
                except ValueError as exc:
                    problems.append(f"{where}.allow_private[{index}]: {exc}")
        proxy = raw.get("proxy")
        if proxy is not None:
            try:
                parsed = URL(str(proxy))
            except ValueError:
                parsed = None
            if parsed is None or parsed.scheme != "http" or not parsed.host:
                problems.append(f"{where}.proxy: an http://HOST:PORT URL, got {proxy!r}")
        values: dict[str, Any] = {}
        for key, kind in (("timeout_s", float), ("max_response_bytes", int),
                          ("max_redirects", int)):  # fmt: skip
            if key not in raw:
                continue
            value = raw[key]
            low = {"timeout_s": 0.0, "max_response_bytes": 1, "max_redirects": 0}[key]
            bad = isinstance(value, bool) or not isinstance(value, int | float)
            if bad or value < low or (key == "timeout_s" and value == 0):
                sign = ">" if key == "timeout_s" else ">="
                problems.append(f"{where}.{key}: must be a number {sign} {low}, got {value!r}")
            elif kind is int and not isinstance(value, int):
                problems.append(f"{where}.{key}: must be an integer, got {value!r}")
            else:
                values[key] = kind(value)
        if problems:
            raise ConfigError(f"{where}: invalid egress policy", problems)
        return cls(
            allow=frozenset(allow), tenants=tenants, allow_private=tuple(private),
            proxy=str(proxy) if proxy is not None else None,
            resolver=resolver or SystemResolver(), **values,
        )  # fmt: skip

    def only(self, url: str) -> EgressPolicy:
        """This policy narrowed to ``url``'s host and port (a configured endpoint): its
        address rules, proxy and bounds stay."""
        target = self.admit(url, check_allowlist=False)
        return replace(self, allow=frozenset({_authority(target)}), tenants={})

    def with_resolver(self, resolver: Resolver) -> EgressPolicy:
        """The same policy, resolving names with ``resolver``."""
        return replace(self, resolver=resolver)

    # step 1: the URL and the allowlist -----------------------------------------------------------
    def admit(
        self, url: str | URL, tenant: str | None = None, *, check_allowlist: bool = True
    ) -> Target:
        """The URL's endpoint, if its form is unambiguous, its host on the allowlist (for
        ``tenant``, when given) and, when written as an address, that address allowed; an
        :class:`EgressDeniedError` otherwise (``check_allowlist=False`` checks the form only)."""
        shown = url  # turned into text only for a refusal: str(URL) costs on every call
        if isinstance(url, str):
            if any(ch in url for ch in "\\\t\r\n ") or not url.isascii():
                raise EgressDeniedError(shown, "the URL holds whitespace, backslashes or non-ASCII")
            try:
                url = URL(url)
            except ValueError as exc:
                raise EgressDeniedError(shown, f"not a valid URL ({exc})") from exc
        if url.scheme not in ("http", "https"):
            scheme = url.scheme or "(none)"
            raise EgressDeniedError(shown, f"scheme {scheme!r} is not http or https")
        if url.user is not None or url.password is not None or "@" in (url.raw_authority or ""):
            raise EgressDeniedError(shown, "user-info in the URL (a name before '@') is refused")
        raw_host = url.raw_host or ""
        if not raw_host:
            raise EgressDeniedError(shown, "the URL has no host")
        if "%" in raw_host:
            why = "an IPv6 zone id" if ":" in raw_host else "a percent-encoded host"
            raise EgressDeniedError(shown, f"{why} is refused")
        try:
            port = url.port
        except ValueError as exc:
            raise EgressDeniedError(shown, f"bad port ({exc})") from exc
        if port is None or not 0 < port < 65536:
            raise EgressDeniedError(shown, "bad port")
        host = raw_host.lower()
        host = host[:-1] if host.endswith(".") and not host.endswith("..") else host
        literal, bad_form = _host_form(host)
        if bad_form is not None:
            raise EgressDeniedError(shown, bad_form)
        if literal is not None and literal.version == 6:
            host = str(literal)  # the canonical spelling, as allowlist entries are kept
        target = Target(url.scheme, host, port)
        if not check_allowlist:
            return target
        denial = None if literal is None else _denial(literal, self.allow_private)
        if denial is not None:  # an address written out is refused for what it is
            raise EgressDeniedError(shown, f"{literal}: {denial}")
        if not self.allows(target.host, target.port, tenant):
            whose = f" (tenant {tenant!r})" if tenant and tenant in self.tenants else ""
            raise EgressDeniedError(shown, f"{_authority(target)} is not on the allowlist{whose}")
        return target

    def allows(self, host: str, port: int, tenant: str | None = None) -> bool:
        """Whether ``host:port`` is on the allowlist (the app's, plus ``tenant``'s)."""
        patterns: Iterable[str] = self.allow
        if tenant is not None and tenant in self.tenants:
            patterns = (*self.allow, *self.tenants[tenant])
        return any(_pattern_matches(p, host, port) for p in patterns)

    def allows_any(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is on the app's allowlist or any tenant's."""
        return self.allows(host, port) or any(
            _pattern_matches(p, host, port) for hosts in self.tenants.values() for p in hosts
        )

    # step 2: the addresses ----------------------------------------------------------------------
    def address_denial(self, address: IPAddress) -> str | None:
        """Why this policy refuses ``address``, or None."""
        return _denial(address, self.allow_private)

    async def resolve(self, host: str, port: int, *, shown: str = "") -> tuple[str, ...]:
        """The checked addresses of ``host`` (resolved once); an :class:`EgressDeniedError` when
        any is refused or there is none. Connect to these, never to a new lookup."""
        shown = shown or f"{host}:{port}"
        # The host's form again: a caller that skipped admit() (a connection aiohttp opens
        # for any reason) must not hand "0x7f.1" to a resolver that reads it as 127.0.0.1.
        literal, bad_form = _host_form(host)
        if bad_form is not None:
            raise EgressDeniedError(shown, bad_form)
        if literal is not None:
            addresses: Sequence[str] = [str(literal)]
        else:
            try:
                addresses = await self.resolver.resolve(host, port)
            except OSError as exc:
                raise EgressDeniedError(shown, f"{host} does not resolve ({exc})") from exc
            if not addresses:
                raise EgressDeniedError(shown, f"{host} resolves to no address")
        checked: list[str] = []
        for text in addresses:
            try:
                address = ipaddress.ip_address(text)
            except ValueError as exc:
                bad = f"{host} resolved to {text!r}, not an address"
                raise EgressDeniedError(shown, bad) from exc
            why = self.address_denial(address)
            if why is not None:
                via = "" if literal is not None else f"{host} resolves to "
                raise EgressDeniedError(shown, f"{via}{address}: {why}")
            checked.append(str(address))
        return tuple(checked)

    async def check(self, url: str, tenant: str | None = None) -> Decision:
        """Both steps, as the runtime runs them, answered as a :class:`Decision`."""
        try:
            target = self.admit(url, tenant)
            addresses = await self.resolve(target.host, target.port, shown=url)
        except EgressDeniedError as exc:
            return Decision(url, False, exc.reason)
        via = f" via proxy {self.proxy}" if self.proxy else ""
        reason = f"{_authority(target)} is on the allowlist; {', '.join(addresses)} allowed{via}"
        return Decision(url, True, reason, target.host, target.port, addresses)


def _authority(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{host}:{target.port}"


def _patterns(raw: Any, where: str, problems: list[str]) -> list[str]:
    if not isinstance(raw, list):
        problems.append(f"{where}: a list of host or host:port")
        return []
    found = []
    for index, item in enumerate(raw):
        try:
            found.append(_normal_pattern(str(item), f"{where}[{index}]"))
        except ConfigError as exc:
            problems.append(str(exc))
    return found
