"""The ``contract`` gate of ``sluice test``: contract checks as cases of the app's gates."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
import yaml

from sluice.suites import SuiteError, Target, run_suites

SUITES = """
contract:
  examples: 8
  events: 2
  api_examples: 2
"""


def declare(app: Path, text: str = SUITES) -> None:
    """Write the app's tests/suites.yaml."""
    (app / "tests").mkdir(exist_ok=True)
    (app / "tests/suites.yaml").write_text(textwrap.dedent(text))


def test_the_gate_turns_each_check_into_a_case(tiny_app: Path) -> None:
    declare(tiny_app)
    run = run_suites(Target.load(tiny_app), only="contract")
    assert run.passed, [r.message for r in run.results]
    assert [(r.gate, r.suite, r.name) for r in run.results] == [
        ("contract", "inbound", "inbound:shop"),
        ("contract", "consumer", "consumer:ledger"),
        ("contract", "own-api", "own-api"),
    ]
    inbound = run.results[0]
    assert inbound.figures["valid.sent"] == inbound.figures["valid.accepted"] == 8
    assert run.results[1].figures["states.done"] == 2


def test_sluice_test_fails_the_contract_gate_on_a_changed_receiver(tiny_app: Path) -> None:
    declare(tiny_app)
    path = tiny_app / "contracts/partners/ledger.yaml"
    doc = yaml.safe_load(path.read_text())
    result = doc["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]
    result["schema"]["properties"]["result"]["properties"]["risk"] = {"enum": ["LOW", "HIGH"]}
    path.write_text(yaml.safe_dump(doc))
    cmd = [sys.executable, "-m", "sluice", "test", str(tiny_app), "--gate", "contract", "--json"]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    report = orjson.loads(done.stdout)
    failed = [case for case in report["cases"] if not case["passed"]]
    assert [case["name"] for case in failed] == ["consumer:ledger"]
    assert failed[0]["message"].startswith(
        "consumer ledger (webhook, orders.deliver): 0/2 requests valid against ledger.yaml; "
        "0/2 events done; first problem: POST /orders: body $.result.risk: "
    )
    assert failed[0]["figures"]["valid"] == 0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("contract: {exampels: 3}\n", "contract.exampels: unknown key (did you mean examples?)"),
        ("contract: {events: 0}\n", "contract.events: must be an integer in 1..200, got 0"),
    ],
)
def test_bad_gate_options_name_the_line_and_key(tiny_app: Path, text: str, problem: str) -> None:
    declare(tiny_app, text)
    with pytest.raises(SuiteError) as info:
        run_suites(Target.load(tiny_app), only="contract")
    assert problem in str(info.value)
