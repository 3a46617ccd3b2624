"""``sluice test`` as a command: the manifest, the summary, --json, --junit (read back by
junitparser, an independent parser), --gate, and the exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import junitparser
import pytest
from typer.testing import CliRunner

from sluice.cli.main import build_app
from sluice.suites import CaseResult, SuiteError, Target, junit_xml, run_suites
from tests.conftest import MakeApp

CONFIG = "pools: {cpu: {concurrency: 2}}\n"
WORKFLOWS = {
    "shout.yaml": """
name: shout
input_schema: {type: object, required: [text]}
steps:
  - {name: up, pool: cpu, uses: "shout_steps:up"}
"""
}
STEPS = {
    "shout_steps.py": """
async def up(ctx, data):
    return {"text": data["text"].upper(), "length": len(data["text"])}
"""
}
SUITE = """\
suite: shout
version: 1
workflow: shout
output_schema: {type: object, required: [text, length]}
cases:
  - name: hello
    input: {text: hello}
    expect: {text: HELLO, length: {min: 1, max: 10}}
  - name: wrong
    input: {text: bye}
    expect:
      - {text: {one_of: [BYE!, Bye]}}
      - {text: {pattern: "^b"}}
"""


@pytest.fixture
def app(make_app: MakeApp) -> Path:
    """An app with one workflow and a golden suite of two cases, the second one failing."""
    root = make_app(CONFIG, WORKFLOWS, STEPS)
    (root / "tests" / "golden").mkdir(parents=True)
    (root / "tests" / "suites.yaml").write_text("golden: {suites: shout}\n")
    (root / "tests" / "golden" / "shout.v1.yaml").write_text(SUITE)
    return root


def test_the_command_prints_the_table_and_exits_1_when_a_case_fails(
    app: Path, tmp_path: Path
) -> None:
    """The table, the failure line naming case, line, field and figures; exit code 1; the
    JUnit file has one test case per golden case, read back by junitparser."""
    junit = tmp_path / "reports" / "junit.xml"
    result = CliRunner().invoke(build_app(), ["test", str(app), "--junit", str(junit)])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["golden", "shout.v1", "2", "1", "0", "FAIL"]
    assert lines[2] == (
        "FAIL golden shout.v1: wrong (line 9): text: expected one of ['BYE!', 'Bye'], got 'BYE'"
    )
    assert lines[-1].startswith("FAILED: 2 cases in ")
    xml = junitparser.JUnitXml.fromfile(str(junit))
    suites = list(xml)
    assert [s.name for s in suites] == ["golden.shout.v1"]
    assert (suites[0].tests, suites[0].failures) == (2, 1)
    cases = {case.name: case for case in suites[0]}
    assert cases["hello"].is_passed
    assert cases["hello"].classname == "golden.shout.v1"
    assert json.loads(cases["hello"].system_out)["figures"]["length"] == 5
    assert not cases["wrong"].is_passed
    assert "got 'BYE'" in cases["wrong"].result[0].message


def test_json_has_the_groups_and_every_case_and_a_fixed_suite_passes(app: Path) -> None:
    """``--json`` is one document; fixing the suite makes the run pass with exit code 0."""
    result = CliRunner().invoke(build_app(), ["test", str(app), "--json", "--release", "r7"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["passed"] is False
    assert doc["release"] == "r7"
    assert doc["groups"][0] | {"seconds": 0} == {
        "gate": "golden", "suite": "shout.v1", "cases": 2, "failed": 1, "flaky": 0, "seconds": 0
    }  # fmt: skip
    assert [(c["name"], c["passed"]) for c in doc["cases"]] == [("hello", True), ("wrong", False)]
    fixed = app / "tests" / "golden" / "shout.v1.yaml"
    fixed.write_text(SUITE.replace("[BYE!, Bye]", "[BYE!, BYE]"))
    assert CliRunner().invoke(build_app(), ["test", str(app)]).exit_code == 0


@pytest.mark.parametrize(
    ("manifest", "error"),
    [
        ("goldn: {suites: shout}\n", "suites.yaml:1: goldn: unknown gate (did you mean golden?)"),
        ("golden: {suits: shout}\n", "suites.yaml:1: golden.suits: unknown key (did you mean"),
        ("golden: {}\n", "suites.yaml:1: golden: missing key 'suites'"),
        ("golden: {suites: [nope]}\n", "no file nope.v<N>.yaml for suite 'nope'"),
        ("- golden\n", "suites.yaml:1: must be a mapping of gate name to its options"),
    ],
)
def test_a_bad_manifest_is_one_error_line_and_exit_code_2(
    app: Path, manifest: str, error: str
) -> None:
    """An unknown gate or key, a missing suite: one ``error:`` line naming it (after the
    gate's progress line, if it started), exit code 2."""
    (app / "tests" / "suites.yaml").write_text(manifest)
    result = CliRunner().invoke(build_app(), ["test", str(app)])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert error in errors[0]


def test_gate_runs_one_declared_gate_and_refuses_an_undeclared_one(app: Path) -> None:
    """``--gate golden`` runs it; a gate the manifest does not declare is an error."""
    run = run_suites(Target.load(app), only="golden")
    assert {r.gate for r in run.results} == {"golden"}
    with pytest.raises(SuiteError, match="gate 'snapshot' is not declared"):
        run_suites(Target.load(app), only="snapshot")


def test_junit_marks_flaky_cases_and_keeps_messages_junitparser_reads() -> None:
    """Flaky cases carry a ``flaky`` property; failures their message; counts add up."""
    results = [
        CaseResult("snapshot", "replay", "accuracy", False, "accuracy 0.8 outside", 1.5,
                   {"value": 0.8}),
        CaseResult("snapshot", "replay", "row 3", True, "row 3 flipped", 0.0, {}, flaky=True),
        CaseResult("golden", "triage.v1", "a-1", True, "ok", 0.25, {"intent": "a"}),
    ]  # fmt: skip
    xml = junitparser.JUnitXml.fromstring(junit_xml(results, "2026.12.1").decode())
    assert [(s.name, s.tests, s.failures) for s in xml] == [
        ("snapshot.replay", 2, 1),
        ("golden.triage.v1", 1, 0),
    ]
    replay = next(iter(xml))
    cases = list(replay)
    assert cases[0].result[0].message == "accuracy 0.8 outside"
    assert json.loads(cases[1].system_out)["flaky"] is True
    assert json.loads(cases[0].system_out) == {
        "message": "accuracy 0.8 outside", "flaky": False, "figures": {"value": 0.8}
    }  # fmt: skip
    properties = replay.properties()  # type: ignore[no-untyped-call]  # junitparser: no hints
    assert {p.name: p.value for p in properties}["release"] == "2026.12.1"
    assert replay.time == pytest.approx(1.5)


def test_record_shows_the_changes_and_writes_only_with_write(app: Path) -> None:
    """``record`` prints the failing case's change field by field; without ``--write`` (and
    no terminal to ask) nothing is written; with it, v2 appears and the gate passes; an
    input the workflow refuses fails its case with the answer."""
    golden = app / "tests" / "golden"
    shown = CliRunner().invoke(build_app(), ["test", "record", str(app), "--suite", "shout"])
    assert shown.exit_code == 0, shown.output
    assert "  wrong: text: {'one_of': ['BYE!', 'Bye']} -> {'one_of': ['BYE!', 'Bye', 'BYE']}" in (
        shown.stdout
    )
    assert "shout v1 -> v2: 1 changes, 1 of 2 cases as they were" in shown.stdout
    assert "not written: pass --write" in shown.stdout
    assert sorted(p.name for p in golden.iterdir()) == ["shout.v1.yaml"]
    args = ["test", "record", str(app), "--suite", "shout", "--write"]
    written = CliRunner().invoke(build_app(), args)
    assert written.exit_code == 0, written.output
    assert sorted(p.name for p in golden.iterdir()) == ["shout.v1.yaml", "shout.v2.yaml"]
    assert CliRunner().invoke(build_app(), ["test", str(app)]).exit_code == 0

    (golden / "shout.v3.yaml").write_text(
        SUITE.replace("version: 1", "version: 3").replace("{text: bye}", "{txt: bye}")
    )
    run = run_suites(Target.load(app))
    refused = next(r for r in run.results if r.name == "wrong")
    assert refused.message.startswith("wrong (line 9): the run ended refused: run of 'shout'")
    assert "422" in refused.message
