"""The SSRF corpus: URL forms that reach internal addresses, each refused with its reason.

Every form runs through :meth:`EgressPolicy.check`, the steps every outbound session runs
(the URL's form, the allowlist, one lookup, every address), against a policy whose allowlist
holds every attacker name, so a refusal must come from the form or the address. Names resolve
through a local table (no network). Redirects and real connections are in
``test_egress_connections.py``.
"""

from __future__ import annotations

import ipaddress

import pytest

from sluice.outbound.policy import EgressDeniedError, EgressPolicy, address_denial

from .ssrf import LocalResolver, corpus_policy

LOOP = "loopback address"
MAPPED = "IPv4-mapped IPv6 address"
COMPAT = "IPv4-compatible IPv6 address"
NONCANON = "non-canonical IPv4 form"
LINK = "link-local address"
USERINFO = "user-info in the URL"
PCT = "percent-encoded host"
NONASCII = "non-ASCII"
SCHEME = "is not http or https"

# (URL, a part of the reason the refusal must give)
CORPUS: list[tuple[str, str]] = [
    # IPv4 in decimal, octal, hex and short forms: resolvers read them as addresses.
    ("http://2130706433/", "(it reads as 127.0.0.1)"),
    ("http://0177.0.0.1/", "(it reads as 127.0.0.1)"),
    ("http://0x7f.1/", "(it reads as 127.0.0.1)"),
    ("http://127.1/", "(it reads as 127.0.0.1)"),
    ("http://127.0.1/", "(it reads as 127.0.0.1)"),
    ("http://0x7f000001/", "(it reads as 127.0.0.1)"),
    ("http://017700000001/", "(it reads as 127.0.0.1)"),
    ("http://0x7f.0.0.1/", "(it reads as 127.0.0.1)"),
    ("http://0177.1/", "(it reads as 127.0.0.1)"),
    ("http://0x7F.0x00.0x00.0x01/", "(it reads as 127.0.0.1)"),
    ("http://127.000.000.001/", "(it reads as 127.0.0.1)"),
    ("http://0127.0.0.1/", "(it reads as 87.0.0.1)"),
    ("http://3232235521/", "(it reads as 192.168.0.1)"),
    ("http://0xa9fea9fe/", "(it reads as 169.254.169.254)"),
    ("http://2852039166/", "(it reads as 169.254.169.254)"),
    ("http://0251.0376.0251.0376/", "(it reads as 169.254.169.254)"),
    ("http://169.254.43518/", "(it reads as 169.254.169.254)"),
    ("http://10.1/", "(it reads as 10.0.0.1)"),
    ("http://0x0a.0.0.1/", "(it reads as 10.0.0.1)"),
    ("http://0/", "(it reads as 0.0.0.0)"),
    ("http://0x0/", "(it reads as 0.0.0.0)"),
    ("http://0x7f.1:8080/admin", "(it reads as 127.0.0.1)"),
    # IPv4 written canonically, in every refused range.
    ("http://127.0.0.1/", LOOP),
    ("http://127.255.255.254/", LOOP),
    ("http://127.0.0.1:6379/", LOOP),
    ("http://10.0.0.1/", "private address (10.0.0.0/8)"),
    ("http://172.16.0.1/", "private address (172.16.0.0/12)"),
    ("http://172.31.255.255/", "private address (172.16.0.0/12)"),
    ("http://192.168.1.1/", "private address (192.168.0.0/16)"),
    ("http://169.254.169.254/latest/meta-data/", LINK),
    ("http://169.254.170.2/v2/credentials", LINK),
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://100.127.255.254/", "carrier-grade NAT"),
    ("http://0.0.0.0/", "unspecified address"),
    ("http://0.1.2.3/", "'this network'"),
    ("http://224.0.0.1/", "multicast address"),
    ("http://239.255.255.250/", "multicast address"),
    ("http://240.0.0.1/", "reserved address"),
    ("http://255.255.255.255/", "broadcast address"),
    ("http://192.0.2.1/", "documentation address"),
    ("http://198.51.100.7/", "documentation address"),
    ("http://203.0.113.9/", "documentation address"),
    ("http://198.18.0.1/", "benchmarking address"),
    ("http://198.19.255.254/", "benchmarking address"),
    ("http://192.0.0.170/", "IETF protocol assignment"),
    ("http://192.88.99.1/", "6to4 relay anycast"),
    # IPv6 literals, and the IPv6 forms that carry an IPv4 address.
    ("http://[::1]/", LOOP),
    ("http://[0:0:0:0:0:0:0:1]/", LOOP),
    ("http://[::]/", "unspecified address"),
    ("http://[::ffff:127.0.0.1]/", MAPPED),
    ("http://[::ffff:7f00:1]/", MAPPED),
    ("http://[::ffff:169.254.169.254]/", MAPPED),
    ("http://[::ffff:10.0.0.1]:8080/", MAPPED),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]/", MAPPED),
    ("http://[::127.0.0.1]/", COMPAT),
    ("http://[::7f00:1]/", COMPAT),
    ("http://[::ffff:0:7f00:1]/", "IPv4-translated"),
    ("http://[64:ff9b::127.0.0.1]/", "NAT64 address"),
    ("http://[64:ff9b::a9fe:a9fe]/", "NAT64 address"),
    ("http://[64:ff9b:1::a00:1]/", "local-use NAT64"),
    ("http://[2002:7f00:1::]/", "6to4 address"),
    ("http://[2002:a9fe:a9fe::1]/", "6to4 address"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo address"),
    ("http://[2001::1]/", "Teredo address"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "unique-local"),
    ("http://[fc00::1]/", "unique-local"),
    ("http://[fe80::1]/", LINK),
    ("http://[febf::1]/", LINK),
    ("http://[fec0::1]/", "site-local"),
    ("http://[ff02::1]/", "multicast address"),
    ("http://[2001:db8::1]/", "documentation address"),
    ("http://[3fff::1]/", "documentation address"),
    ("http://[100::1]/", "discard-only"),
    ("http://[2001:2::1]/", "benchmarking address"),
    ("http://[5f00::1]/", "segment routing"),
    ("http://[4000::1]/", "outside 2000::/3"),
    ("http://[fe80::1%25eth0]/", "IPv6 zone id"),
    # Trailing dots.
    ("http://127.0.0.1./", LOOP),
    ("http://localhost./", "localhost resolves to 127.0.0.1: loopback"),
    ("http://internal.example./", "internal.example resolves to 10.0.0.5"),
    ("http://127.0.0.1../", "is not a valid host name"),
    ("http://0x7f.1./", "(it reads as 127.0.0.1)"),
    # User-info tricks: the host is what follows the last '@'.
    ("http://allowed.example@127.0.0.1/", USERINFO),
    ("http://allowed.example:80@127.0.0.1/", USERINFO),
    ("http://user:pass@allowed.example/", USERINFO),
    ("http://allowed.example@169.254.169.254/", USERINFO),
    ("http://allowed.example@[::1]/", USERINFO),
    ("http://allowed.example\\@127.0.0.1/", "backslashes"),
    ("http://allowed.example%40127.0.0.1/", PCT),
    # Percent-encoding and look-alike characters.
    ("http://%31%32%37.0.0.1/", PCT),
    ("http://127.0.0.%31/", PCT),
    ("http://%6c%6f%63%61%6c%68%6f%73%74/", PCT),
    ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", NONASCII),
    ("http://127\u30020\u30020\u30021/", NONASCII),
    ("http://\u2460\u2461\u2466.0.0.1/", NONASCII),
    ("http://allowed.example\u2025evil/", NONASCII),
    ("http://127.0.0.1 /", "whitespace"),
    ("http://127.0.0.1\t/", "whitespace"),
    # Names that resolve to internal addresses (a local resolver stands in for DNS).
    ("http://localhost/", "localhost resolves to 127.0.0.1: loopback"),
    ("http://localhost:8080/", "localhost resolves to 127.0.0.1"),
    ("http://internal.example/", "internal.example resolves to 10.0.0.5: private"),
    ("http://meta.example/latest/meta-data/", "resolves to 169.254.169.254: link-local"),
    ("http://v6meta.example/", "resolves to fd00:ec2::254: unique-local"),
    ("http://mixed.example/", "resolves to 10.0.0.5: private"),
    ("http://mapped.example/", f"resolves to ::ffff:7f00:1: {MAPPED}"),
    ("http://cgnat.example/", "carrier-grade NAT"),
    ("http://nat64.example/", "NAT64 address"),
    ("http://teredo.example/", "Teredo address"),
    ("http://sixtofour.example/", "6to4 address"),
    ("http://zero.example/", "unspecified address"),
    ("http://multicast.example/", "multicast address"),
    ("http://ula.example/", "unique-local"),
    ("http://linklocal6.example/", LINK),
    ("http://127.0.0.1.nip.example/", "resolves to 127.0.0.1: loopback"),
    ("http://bogus.example/", "not an address"),
    ("http://empty.example/", "resolves to no address"),
    ("http://nx.example/", "does not resolve"),
    # Other schemes, and URLs with no usable host or port.
    ("file:///etc/passwd", SCHEME),
    ("gopher://127.0.0.1:6379/_FLUSHALL", SCHEME),
    ("dict://127.0.0.1:11211/stat", SCHEME),
    ("ftp://allowed.example/", SCHEME),
    ("ldap://127.0.0.1/", SCHEME),
    ("//127.0.0.1/", SCHEME),
    ("http:///path", "no host"),
    ("http://allowed.example:99999/", "Port out of range"),
    ("http://allowed.example:0/", "bad port"),
    ("http://a..b.example/", "is not a valid host name"),
    ("http://-bad.example/", "is not a valid host name"),
    ("http://1.2.3.4.5/", "numeric label"),
    # Not on the allowlist (or not on it for that port).
    ("http://evil.example/", "evil.example:80 is not on the allowlist"),
    ("http://allowed.example.evil.example/", "is not on the allowlist"),
    ("http://evilallowed.example/", "is not on the allowlist"),
    ("http://sub.allowed.example/", "is not on the allowlist"),
    ("http://api.example/", "api.example:80 is not on the allowlist"),
    ("http://api.example:8444/", "api.example:8444 is not on the allowlist"),
]


def test_the_corpus_is_large_and_distinct() -> None:
    """At least 100 distinct forms."""
    urls = [url for url, _ in CORPUS]
    assert len(set(urls)) == len(urls) >= 100


@pytest.mark.parametrize(("url", "reason"), CORPUS, ids=[url for url, _ in CORPUS])
async def test_every_form_is_refused_with_its_reason(url: str, reason: str) -> None:
    """Refused, and for the reason expected (not by accident of another rule)."""
    decision = await corpus_policy().check(url)
    assert not decision.allowed
    assert reason in decision.reason, decision.reason
    assert decision.addresses == ()


async def test_allowed_hosts_are_allowed() -> None:
    """Public addresses of allowed names pass, with the address they will be called on."""
    policy = corpus_policy()
    for url, host, port in [
        ("https://allowed.example/hook", "allowed.example", 443),
        ("http://ALLOWED.example./x", "allowed.example", 80),
        ("http://allowed.example#@127.0.0.1/", "allowed.example", 80),
        ("http://allowed.example/?next=http://127.0.0.1/", "allowed.example", 80),
        ("https://api.example:8443/v1", "api.example", 8443),
    ]:
        decision = await policy.check(url)
        assert decision.allowed, (url, decision.reason)
        assert (decision.host, decision.port, decision.addresses) == (
            host, port, ("93.184.216.34",)
        )  # fmt: skip


async def test_a_rebinding_name_is_checked_on_each_lookup() -> None:
    """The first answer (public) passes; the second (loopback) is refused: no lookup's answer
    is trusted without its own check."""
    policy = corpus_policy()
    first = await policy.check("http://rebind.example/")
    second = await policy.check("http://rebind.example/")
    assert first.allowed
    assert first.addresses == ("93.184.216.34",)
    assert not second.allowed
    assert "rebind.example resolves to 127.0.0.1: loopback" in second.reason


async def test_allow_private_opens_exactly_the_networks_named() -> None:
    """``allow_private: [127.0.0.1/32]`` allows that address and nothing near it."""
    resolver = LocalResolver({"localhost": ["127.0.0.1"]})
    policy = EgressPolicy.from_config(
        {"allow": ["localhost", "127.0.0.1", "127.0.0.2", "[::1]", "[::ffff:127.0.0.1]"],
         "allow_private": ["127.0.0.1/32"]},
        resolver=resolver,
    )  # fmt: skip
    assert (await policy.check("http://localhost:8000/")).allowed
    assert (await policy.check("http://127.0.0.1:9/")).allowed
    for url in ("http://127.0.0.2/", "http://[::1]/", "http://[::ffff:127.0.0.1]/"):
        assert not (await policy.check(url)).allowed, url


async def test_tenants_add_their_own_hosts() -> None:
    """A tenant's allowlist adds to the app's, for that tenant only."""
    resolver = LocalResolver({"hooks.acme.example": ["93.184.216.35"]})
    policy = EgressPolicy.from_config(
        {"allow": [], "tenants": {"acme": {"allow": ["hooks.acme.example"]}}}, resolver=resolver
    )
    assert (await policy.check("https://hooks.acme.example/x", "acme")).allowed
    other = await policy.check("https://hooks.acme.example/x", "globex")
    assert not other.allowed
    assert "hooks.acme.example:443 is not on the allowlist" in other.reason


def test_every_documented_range_has_a_reason() -> None:
    """Spot checks of the range table, and public addresses pass."""
    for text in ("8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001::1"):
        assert address_denial(ipaddress.ip_address(text)) is None, text
    assert address_denial(ipaddress.ip_address("169.254.169.254")) == (
        "link-local address (cloud metadata lives here)"
    )


def test_bad_policy_settings_name_their_path() -> None:
    """Every problem of an outbound: section, with its path."""
    from sluice.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        EgressPolicy.from_config({
            "allow": ["ok.example", "http://bad/"], "allow_private": ["10.0.0.1/8"],
            "proxy": "socks5://p:1", "max_redirects": -1, "colour": 1,
            "tenants": {"acme": ["x"]},
        })  # fmt: skip
    text = str(info.value)
    for part in ("outbound.colour: unknown key", "outbound.allow[1]", "outbound.allow_private[0]",
                 "outbound.proxy", "outbound.max_redirects", "outbound.tenants.acme"):  # fmt: skip
        assert part in text, part


async def test_allowlist_entries_match_as_written_in_any_spelling() -> None:
    """Case, a trailing dot, ports, wildcards and IPv6 spellings are normalized on both sides;
    an entry that is not a host is refused with its path."""
    resolver = LocalResolver({"api.example.com": ["93.184.216.34"],
                              "x.partner.example": ["93.184.216.35"]})  # fmt: skip
    policy = EgressPolicy.from_config(
        {"allow": ["Api.Example.com.:8443", "*.Partner.example", "[2606:4700::1111]:443",
                   "2a00:1450:4001::1"]},
        resolver=resolver,
    )  # fmt: skip
    for url in ("https://API.example.com:8443/", "https://x.partner.example/",
                "https://[2606:4700:0:0::1111]/", "http://[2a00:1450:4001:0::1]:9/"):  # fmt: skip
        assert (await policy.check(url)).allowed, url
    for url, reason in [
        ("https://api.example.com/", "api.example.com:443 is not on the allowlist"),
        ("http://partner.example/", "partner.example:80 is not on the allowlist"),
        ("http://[2606:4700::1111]/", "[2606:4700::1111]:80 is not on the allowlist"),
    ]:
        decision = await policy.check(url)
        assert not decision.allowed
        assert reason in decision.reason
    from sluice.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        EgressPolicy.from_config({"allow": ["http://x/", "a:b", "[::1", "::zz"]})
    assert [p.split(":")[0] for p in info.value.problems] == [
        "outbound.allow[0]", "outbound.allow[1]", "outbound.allow[2]", "outbound.allow[3]"
    ]  # fmt: skip


async def test_the_connection_step_checks_the_form_too() -> None:
    """resolve() (what connections call) refuses numeric spellings even when the URL step
    was skipped, and never asks the resolver about them."""
    resolver = LocalResolver({})
    policy = EgressPolicy.loopback(resolver=resolver)
    for host in ("0x7f.1", "2130706433", "127.1", "0177.0.0.1"):
        with pytest.raises(EgressDeniedError, match="non-canonical IPv4 form"):
            await policy.resolve(host, 80)
    assert resolver.lookups == []
    assert await policy.resolve("127.0.0.1", 80) == ("127.0.0.1",)
