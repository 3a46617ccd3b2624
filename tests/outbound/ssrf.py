"""Shared pieces of the egress tests: a local resolver (no network) and the corpus policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sluice.outbound.policy import EgressPolicy


class LocalResolver:
    """A resolver answering from a table, counting lookups; a name missing from the table
    does not resolve. A list of answers per name is consumed one lookup at a time (the last
    answer repeats): that is how a rebinding name behaves."""

    def __init__(
        self,
        table: Mapping[str, Sequence[str]],
        turns: Mapping[str, Sequence[Sequence[str]]] | None = None,
    ) -> None:
        self.table = dict(table)
        self.turns = dict(turns or {})
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int) -> Sequence[str]:
        """The table's answer for ``host`` (for a rebinding name, its next answer)."""
        self.lookups.append(host)
        if host in self.turns:
            answers = self.turns[host]
            return answers[min(self.lookups.count(host), len(answers)) - 1]
        if host not in self.table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return self.table[host]


# Names as an attacker would set them up, answered locally.
CORPUS_NAMES: dict[str, Sequence[str]] = {
    "allowed.example": ["93.184.216.34"],
    "api.example": ["93.184.216.34"],
    "internal.example": ["10.0.0.5"],
    "meta.example": ["169.254.169.254"],
    "v6meta.example": ["fd00:ec2::254"],
    "mixed.example": ["93.184.216.34", "10.0.0.5"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "cgnat.example": ["100.64.0.7"],
    "nat64.example": ["64:ff9b::a9fe:a9fe"],
    "teredo.example": ["2001:0:4136:e378:8000:63bf:3fff:fdd2"],
    "sixtofour.example": ["2002:7f00:1::1"],
    "localhost": ["127.0.0.1", "::1"],
    "zero.example": ["0.0.0.0"],  # noqa: S104  # an answer to refuse, not a bind address
    "multicast.example": ["224.0.0.251"],
    "ula.example": ["fc00::1"],
    "linklocal6.example": ["fe80::1"],
    "127.0.0.1.nip.example": ["127.0.0.1"],
    "bogus.example": ["not-an-address"],
    "empty.example": [],
}
# A name that answers a public address first, then loopback (DNS rebinding).
REBINDING = {"rebind.example": [["93.184.216.34"], ["127.0.0.1"]]}

CORPUS_ALLOW = frozenset({
    "allowed.example", "api.example:8443", "internal.example", "meta.example", "v6meta.example",
    "mixed.example", "mapped.example", "cgnat.example", "nat64.example", "teredo.example",
    "sixtofour.example", "localhost", "zero.example", "multicast.example", "ula.example",
    "linklocal6.example", "*.nip.example", "bogus.example", "empty.example", "nx.example",
    "rebind.example",
})  # fmt: skip


def corpus_policy(resolver: LocalResolver | None = None) -> EgressPolicy:
    """The app policy the corpus runs against: every attacker name is on the allowlist, so
    each refusal must come from the URL's form or the addresses, not from a missing entry."""
    return EgressPolicy(
        allow=CORPUS_ALLOW, resolver=resolver or LocalResolver(CORPUS_NAMES, REBINDING)
    )
