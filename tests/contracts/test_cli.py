"""``sluice contract check``: every check of an app, a line each, a JUnit report, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml


def contract_check(app: Path, junit: Path) -> subprocess.CompletedProcess[str]:
    """Run the command on ``app`` with small budgets."""
    cmd = [
        sys.executable,
        "-m",
        "sluice",
        "contract",
        "check",
        str(app),
        "--examples",
        "10",
        "--events",
        "3",
        "--api-examples",
        "3",
        "--junit",
        str(junit),
    ]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)


def test_contract_check_passes_and_reports_each_check(tiny_app: Path, tmp_path: Path) -> None:
    junit = tmp_path / "reports/contract.xml"
    done = contract_check(tiny_app, junit)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["PASS"] * 3
    assert lines[0].startswith("PASS  inbound shop -> orders: 10/10 valid payloads accepted")
    assert lines[1].startswith("PASS  consumer ledger (webhook, orders.deliver): 3/3 requests")
    assert lines[2].startswith("PASS  own-api: ")
    root = ET.parse(junit).getroot()  # noqa: S314 - the report this test wrote
    assert (root.get("tests"), root.get("failures")) == ("3", "0")
    suites = [suite.get("name") for suite in root.iter("testsuite")]
    assert suites == ["contract.inbound", "contract.consumer", "contract.own-api"]
    names = [case.get("name") for case in root.iter("testcase")]
    assert names == ["inbound:shop", "consumer:ledger", "own-api"]


def test_contract_check_fails_with_the_check_and_its_figures(
    tiny_app: Path, tmp_path: Path
) -> None:
    path = tiny_app / "contracts/sources/shop.yaml"
    schema = yaml.safe_load(path.read_text())
    order = schema["properties"]["order"]
    order["properties"]["total"] = order["properties"].pop("amount")
    order["required"] = ["id", "total"]
    path.write_text(yaml.safe_dump(schema))
    junit = tmp_path / "contract.xml"
    done = contract_check(tiny_app, junit)
    assert done.returncode == 1
    first = done.stdout.splitlines()[0]
    assert first.startswith("FAIL  inbound shop -> orders: 0/10 valid payloads accepted")
    assert "the source schema has no 'amount' under $.order" in first
    root = ET.parse(junit).getroot()  # noqa: S314 - the report this test wrote
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None
    assert "0/10 valid payloads accepted" in failure.get("message", "")


def test_unreadable_contracts_are_one_error_line_with_the_path(tiny_app: Path) -> None:
    (tiny_app / "contracts/contracts.yaml").write_text("sources:\n  shop: {schema: nope.yaml}\n")
    done = contract_check(tiny_app, tiny_app / "x.xml")
    assert done.returncode == 2
    assert done.stderr.startswith("error: invalid contracts in ")
    assert "contracts.yaml: sources.shop.schema: cannot read" in done.stderr


def test_ci_security_as_json_on_the_triage_app(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sluice.cli.main import build_app
    from tests.contracts.conftest import ROOT, TRIAGE

    junit = tmp_path / "security.xml"
    args = [
        "ci",
        "security",
        str(TRIAGE),
        "--lock",
        str(ROOT / "requirements/lock.txt"),
        "--junit",
        str(junit),
        "--json",
    ]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    checks = json.loads(result.stdout)
    assert [c["name"] for c in checks] == ["security:bandit", "security:secrets", "security:lock"]
    assert all(
        list(c) == ["name", "passed", "message", "figures", "problems", "seconds"] for c in checks
    )
    assert all(c["passed"] for c in checks)
    assert checks[0]["figures"]["files"] >= 1  # the triage step module
    root = ET.parse(junit).getroot()  # noqa: S314 - the report this test wrote
    assert (root.get("tests"), root.get("failures")) == ("3", "0")
