"""``sluice test`` on the triage app end to end: its gates pass as recorded, and each broken
variant fails the gate that guards it, naming the case or metric and the figures.

The app is the real one (workflow, routing, templates) on models trained on 12 tickets per
intent (``build_small_triage_app``); its golden suite and snapshot are recorded here from
held-out rows (``replay.csv``), as ``make_golden.py`` and ``sluice test snapshot --update``
do for ``examples/triage``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import junitparser
import pytest

from sluice.models.splits import read_examples
from sluice.suites import SuiteRun, Target, run_suites
from sluice.suites.golden import dump_suite, latest_suite, suite_versions
from sluice.suites.snapshot import dump_snapshot, load_snapshot, measure, updated
from tests.cli.test_cli_runtime import sluice
from tests.examples.test_triage import CONFIG, EXAMPLE, THRESHOLD, build_small_triage_app
from tests.models.conftest import per_label

pytestmark = pytest.mark.slow

MANIFEST = "golden:\n  suites: [triage]\nsnapshot:\n  snapshots: [replay]\n"
SNAPSHOT = """snapshot: replay
workflow: triage
data: data/replay.csv
rows: 150
repeats: 2
max_js_distance: 0.05
metrics:
  accuracy: {abs: 0.01}
"""


def _record(root: Path) -> None:
    """Write tests/ of the app at ``root``: a golden suite of the held-out rows (one per
    intent) the app answers right, pinning intent and route, and the replay snapshot."""
    tests = root / "tests"
    (tests / "golden").mkdir(parents=True)
    (tests / "snapshots").mkdir()
    (tests / "suites.yaml").write_text(MANIFEST)
    rows = per_label(read_examples(root / "data" / "replay.csv"), 1)
    target = Target.load(root)
    outputs = target.run_inputs("triage", [{"text": r.text} for r in rows])
    cases = [
        {
            "name": f"{row.label}-1",
            "input": {"text": row.text},
            "expect": {"intent": row.label, "route": {"equals": dict(out.result["route"])}},
        }
        for row, out in zip(rows, outputs, strict=True)
        if out.result is not None and out.result["intent"] == row.label
    ]
    assert len(cases) >= 30, f"only {len(cases)} of {len(rows)} rows answered right"
    suite = {"suite": "triage", "version": 1, "workflow": "triage", "cases": cases}
    (tests / "golden" / "triage.v1.yaml").write_text(dump_suite(suite))
    path = tests / "snapshots" / "replay.yaml"
    path.write_text(SNAPSHOT)
    snapshot = load_snapshot(path, root, require_values=False)
    content, _ = updated(snapshot, measure(snapshot, target))
    path.write_text(dump_snapshot(content))


@pytest.fixture(scope="module")
def triage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small triage app with its golden suite and snapshot recorded."""
    root = build_small_triage_app(tmp_path_factory.mktemp("triage"), CONFIG)
    shutil.copy(EXAMPLE / "data" / "replay.csv", root / "data" / "replay.csv")
    _record(root)
    return root


def _variant(app: Path, dest: Path, file: str, edit: object) -> Path:
    """A copy of ``app`` (trained models and index included) with ``file`` rewritten."""
    shutil.copytree(app, dest)
    path = dest / file
    assert callable(edit)
    path.write_text(edit(path.read_text()))
    return dest


def _swap(text: str, first: str, second: str) -> str:
    """``text`` with the whole words ``first`` and ``second`` exchanged."""

    def word(name: str) -> str:
        return rf"(?<![\w?]){re.escape(name)}(?![\w?])"

    text = re.sub(word(first), "\0", text)
    text = re.sub(word(second), first, text)
    return text.replace("\0", second)


def _failed(run: SuiteRun, gate: str) -> list[str]:
    return [r.message for r in run.results if r.gate == gate and not r.passed]


def test_the_recorded_app_passes_every_gate(triage: Path) -> None:
    """As recorded, the golden suite and the snapshot pass: one result per case and metric."""
    run = run_suites(Target.load(triage, release="r1"))
    assert run.passed, [r.message for r in run.results if not r.passed]
    suite = latest_suite(triage / "tests", "triage")
    golden = [r for r in run.results if r.gate == "golden"]
    assert [r.name for r in golden] == [c.name for c in suite.cases]
    snapshot = [r.name for r in run.results if r.gate == "snapshot"]
    assert snapshot[:2] == ["accuracy", "macro_f1"]
    assert "escalation_rate" in snapshot
    assert "label_distribution" in snapshot
    # The local models answer the same every time: no row flips between the two runs.
    assert not any(r.flaky and r.name.startswith("row ") for r in run.results)


def test_a_lowered_threshold_fails_the_snapshot_on_its_escalation_rate(
    triage: Path, tmp_path: Path
) -> None:
    """Lowering the small model's threshold sends fewer tickets to the large model: the
    snapshot's escalation rate leaves its band, and the message names it and the figures."""
    broken = _variant(
        triage,
        tmp_path / "low-threshold",
        "workflows/triage.yaml",
        lambda text: text.replace(f"threshold: {THRESHOLD}", "threshold: 0.05"),
    )
    reference = load_snapshot(triage / "tests/snapshots/replay.yaml", triage)
    run = run_suites(Target.load(broken), only="snapshot")
    assert not run.passed
    failed = {r.name: r for r in run.results if not r.passed}
    assert "escalation_rate" in failed, [r.message for r in run.results]
    result = failed["escalation_rate"]
    expected = reference.metrics["escalation_rate"].value
    assert result.figures["reference"] == expected
    assert float(result.figures["value"]) < expected - 0.03
    assert result.message.startswith(f"escalation_rate {result.figures['value']:.6g} (2 runs")
    assert "outside the band" in result.message
    assert f"{expected:g} ± 0.03" in result.message


def test_two_labels_swapped_in_routing_fail_the_golden_cases_of_both(
    triage: Path, tmp_path: Path
) -> None:
    """Swapping two intents between teams in routing.yaml fails exactly the golden cases of
    those intents, each naming the route it expected and the one it got; the snapshot (the
    classifier's behaviour) still passes."""
    suite = latest_suite(triage / "tests", "triage")
    labels = [c.name.removesuffix("-1") for c in suite.cases]
    first = next(label for label in labels if label in ("card_arrival", "activate_my_card"))
    second = next(label for label in labels if label in ("cancel_transfer", "pending_transfer"))
    broken = _variant(
        triage, tmp_path / "swapped", "routing.yaml", lambda t: _swap(t, first, second)
    )
    run = run_suites(Target.load(broken))
    failed = [r for r in run.results if not r.passed]
    assert sorted(r.name for r in failed) == sorted([f"{first}-1", f"{second}-1"])
    assert all(r.gate == "golden" for r in failed)
    by_name = {r.name: r.message for r in failed}
    assert re.search(
        r"route: expected \{'team': 'cards', .*\}, got \{'team': 'transfers'",
        by_name[f"{first}-1"],
    ), by_name
    assert by_name[f"{second}-1"].startswith(f"{second}-1 (line ")


def test_the_command_exits_1_with_junit_a_parser_reads_and_record_proposes_v2(
    triage: Path, tmp_path: Path
) -> None:
    """``sluice test`` on the routing variant exits 1 with a JUnit file that junitparser
    reads (one test case per golden case, the failures with their messages); ``record``
    shows the changes and writes v2 only with --write, after which the gate passes."""
    broken = _variant(
        triage,
        tmp_path / "swapped",
        "routing.yaml",
        lambda t: _swap(t, "card_arrival", "cancel_transfer"),
    )
    suite = latest_suite(broken / "tests", "triage")
    junit = tmp_path / "out" / "junit.xml"
    done = sluice("test", str(broken), "--gate", "golden", "--junit", str(junit),
                  "--release", "2026.12.1", timeout=600)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "FAIL golden triage.v1: card_arrival-1" in done.stdout
    xml = junitparser.JUnitXml.fromfile(str(junit))
    cases = [case for suite_ in xml for case in suite_]
    assert [c.name for c in cases] == [c.name for c in suite.cases]
    failures = {c.name: c.result[0].message for c in cases if not c.is_passed}
    assert "card_arrival-1" in failures
    assert "route: expected" in failures["card_arrival-1"]
    properties = {
        p.name: p.value
        for s in xml
        for p in s.properties()  # type: ignore[no-untyped-call]  # junitparser: no hints
    }
    assert properties == {"gate": "golden", "release": "2026.12.1"}

    shown = sluice("test", "record", str(broken), "--suite", "triage", timeout=600)
    assert shown.returncode == 0, shown.stderr
    assert "card_arrival-1: route: {'equals': {'team': 'cards'" in shown.stdout
    assert "not written: pass --write" in shown.stdout
    assert [v for v, _ in suite_versions(broken / "tests", "triage")] == [1]

    written = sluice("test", "record", str(broken), "--suite", "triage", "--write", timeout=600)
    assert written.returncode == 0, written.stderr
    assert [v for v, _ in suite_versions(broken / "tests", "triage")] == [1, 2]
    assert run_suites(Target.load(broken), only="golden").passed
