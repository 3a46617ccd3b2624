"""The Store protocol is four concerns, each member in one of them and called by its suite."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest

from sluice.store.base import GovernanceStore, IngressStore, JobStore, Store, TelemetryStore

#: Each concern and the contract suite that holds every implementation to it.
SUITES: dict[type, str] = {
    JobStore: "test_contract.py",
    IngressStore: "test_ingress_contract.py",
    TelemetryStore: "test_telemetry_contract.py",
    GovernanceStore: "../governance/test_store_contract.py",
}


def declared(protocol: type) -> set[str]:
    """The methods and attributes ``protocol`` declares itself (inherited ones excluded)."""
    own = vars(protocol)
    return {name for name in own if not name.startswith("_")} | set(own.get("__annotations__", {}))


def test_the_concerns_do_not_overlap() -> None:
    """No member is in two concerns; the union adds only what spans all four."""
    for one, other in combinations(SUITES, 2):
        assert declared(one).isdisjoint(declared(other)), (one.__name__, other.__name__)
    assert declared(Store) == {"codec", "open", "aclose", "reencode_payloads"}


@pytest.mark.parametrize("protocol", list(SUITES), ids=lambda p: p.__name__)
def test_each_suite_exercises_every_member_of_its_concern(protocol: type) -> None:
    """A member added to a concern without a contract test fails here."""
    suite = (Path(__file__).parent / SUITES[protocol]).read_text()
    assert [name for name in sorted(declared(protocol)) if f"store.{name}" not in suite] == []
