"""``sluice test snapshot``: measure, show what moved, --update; then ``sluice test`` judges
the snapshot, on a real local model trained on a few BANKING77 rows."""

from __future__ import annotations

import json

import junitparser
import yaml
from typer.testing import CliRunner

from sluice.cli.main import build_app
from sluice.models.splits import read_examples, write_examples
from tests.conftest import MakeApp
from tests.examples.test_triage import EXAMPLE
from tests.models.conftest import per_label

LABELS = ("card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_failed")
CONFIG = """
pools: {cpu: {concurrency: 2}}
models:
  small: {kind: tfidf, train: data/train.csv, price_per_call: 0.001}
"""
WORKFLOW = """
name: label
steps:
  - name: classify
    pool: cpu
    uses: classify
    options: {field: text, cascade: [{model: small}]}
"""


def test_update_writes_the_snapshot_and_the_gate_then_judges_it(make_app: MakeApp) -> None:
    """``snapshot`` without --update writes nothing; --update --write writes every metric
    with a band and the label shares; ``sluice test`` then passes with one JUnit case per
    metric and the distribution; a band tightened past the measure fails, naming it."""
    app = make_app(CONFIG, {"label.yaml": WORKFLOW})
    rows = [e for e in read_examples(EXAMPLE / "data" / "train.csv") if e.label in LABELS]
    write_examples(app / "data" / "train.csv", per_label(rows, 15))
    held_out = [e for e in read_examples(EXAMPLE / "data" / "replay.csv") if e.label in LABELS]
    write_examples(app / "data" / "held_out.csv", held_out)
    (app / "tests" / "snapshots").mkdir(parents=True)
    (app / "tests" / "suites.yaml").write_text("snapshot: {snapshots: [held_out]}\n")
    path = app / "tests" / "snapshots" / "held_out.yaml"
    path.write_text("snapshot: held_out\ndata: data/held_out.csv\nrepeats: 2\nmetrics:\n"
                    "  accuracy: {abs: 0.05}\n")  # fmt: skip
    runner = CliRunner()

    shown = runner.invoke(build_app(), ["test", "snapshot", str(app)])
    assert shown.exit_code == 0, shown.output
    assert "  accuracy: " in shown.stdout
    assert f"held_out: {len(held_out)} rows x 2 runs" in shown.stdout
    assert "accuracy: {abs: 0.05}" in path.read_text()  # not written

    updated = runner.invoke(build_app(), ["test", "snapshot", str(app), "--update", "--write"])
    assert updated.exit_code == 0, updated.output
    written = yaml.safe_load(path.read_text())
    assert written["metrics"]["accuracy"]["abs"] == 0.05
    assert written["metrics"]["cost_per_1k"] == {"value": 1.0, "rel": 0.25}
    assert set(written["labels"]) <= set(LABELS)
    assert sum(written["labels"].values()) == 1.0

    junit = app / "junit.xml"
    judged = runner.invoke(build_app(), ["test", str(app), "--junit", str(junit), "--json"])
    assert judged.exit_code == 0, judged.output
    doc = json.loads(judged.stdout)
    names = [c["name"] for c in doc["cases"]]
    assert names[:2] == ["accuracy", "macro_f1"]
    assert names[-1] == "label_distribution"
    suites = list(junitparser.JUnitXml.fromfile(str(junit)))
    assert [case.name for case in suites[0]] == names

    accuracy = written["metrics"]["accuracy"]["value"]
    written["metrics"]["accuracy"] = {"value": accuracy + 0.2, "abs": 0.01}
    path.write_text(yaml.safe_dump(written))
    failed = runner.invoke(build_app(), ["test", str(app)])
    assert failed.exit_code == 1
    assert f"FAIL snapshot held_out: accuracy {accuracy:.6g} (2 runs" in failed.stdout
