"""The gates ``sluice test`` knows, by the name ``tests/suites.yaml`` gives them."""

from __future__ import annotations

from collections.abc import Mapping

from sluice.suites.contract_gate import contract_gate
from sluice.suites.gate import GateFactory
from sluice.suites.golden import golden_gate
from sluice.suites.snapshot import snapshot_gate

#: Gate name -> factory; a gate is added here (and nowhere else) to become declarable.
GATES: Mapping[str, GateFactory] = {
    "golden": golden_gate,
    "snapshot": snapshot_gate,
    "contract": contract_gate,
}
