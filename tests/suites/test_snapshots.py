"""Snapshots: bands, the label drift, flaky rows, and errors that name file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from scipy.spatial.distance import jensenshannon  # type: ignore[import-untyped]  # no stubs

from sluice.suites import SuiteError, Target
from sluice.suites.drift import js_distance
from sluice.suites.labelled import METRICS
from sluice.suites.snapshot import (
    Band,
    Measurement,
    dump_snapshot,
    judge,
    load_snapshot,
    measure,
    subset,
    updated,
)
from sluice.testing import ScriptedModel
from tests.conftest import MakeApp

SNAPSHOT = """\
snapshot: replay
data: data/rows.csv
repeats: 3
max_js_distance: 0.1
metrics:
  accuracy: {value: 0.9, abs: 0.02}
  latency_p95_ms: {value: 10, rel: 1.0, side: upper}
labels: {a: 0.5, b: 0.5}
"""


def snapshot_file(tmp_path: Path, text: str = SNAPSHOT) -> Path:
    path = tmp_path / "replay.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def measurement(
    accuracy: list[float], latency: list[float], labels: dict[str, float]
) -> Measurement:
    metrics = {m: [0.0] * len(accuracy) for m in METRICS}
    metrics["accuracy"], metrics["latency_p95_ms"] = accuracy, latency
    return Measurement(metrics, labels, [], [0.1] * len(accuracy), 100)


@pytest.mark.parametrize(
    ("p", "q"),
    [
        ({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}),
        ({"a": 1.0}, {"b": 1.0}),
        ({"a": 0.7, "b": 0.2, "c": 0.1}, {"a": 0.6, "b": 0.1, "d": 0.3}),
        ({"a": 3, "b": 1}, {"a": 1, "b": 3}),
    ],
)
def test_js_distance_agrees_with_scipy(p: dict[str, float], q: dict[str, float]) -> None:
    """The drift measure is SciPy's Jensen-Shannon distance in base 2 (0 equal, 1 disjoint)."""
    labels = sorted(set(p) | set(q))
    expected = jensenshannon([p.get(k, 0) for k in labels], [q.get(k, 0) for k in labels], base=2)
    assert js_distance(p, q) == pytest.approx(expected, abs=1e-9)


def test_bands_absolute_relative_and_one_sided() -> None:
    """An abs band is a distance, a rel band a share of the value; upper fails only a rise."""
    assert Band(0.9, abs=0.02).holds(0.88)
    assert not Band(0.9, abs=0.02).holds(0.879)
    assert Band(10, rel=0.5).holds(14.9)
    assert not Band(10, rel=0.5).holds(4.9)
    assert Band(10, rel=1.0, side="upper").holds(0.1)
    assert not Band(10, rel=1.0, side="upper").holds(20.5)
    assert subset(10, 4) == [0, 2, 5, 7]
    assert subset(3, None) == [0, 1, 2]


def test_metrics_are_judged_on_the_median_with_the_interval_reported(tmp_path: Path) -> None:
    """The median decides; a run outside the band marks the metric flaky; a failure names
    the metric, the figures and the band."""
    snapshot = load_snapshot(snapshot_file(tmp_path), tmp_path)
    results = judge(snapshot, measurement([0.91, 0.895, 0.85], [12, 9, 15], {"a": 0.5, "b": 0.5}))
    by_name = {r.name: r for r in results}
    accuracy, latency = by_name["accuracy"], by_name["latency_p95_ms"]
    assert accuracy.passed
    assert accuracy.flaky
    assert accuracy.message == (
        "accuracy 0.895 (3 runs 0.85..0.91) inside the band 0.9 ± 0.02 [0.88, 0.92]:"
        " some runs fall outside it"
    )
    assert latency.passed
    assert not latency.flaky
    assert by_name["label_distribution"].passed

    results = judge(snapshot, measurement([0.86, 0.87, 0.86], [25, 21, 30], {"a": 0.9, "b": 0.1}))
    by_name = {r.name: r for r in results}
    assert not by_name["accuracy"].passed
    assert by_name["accuracy"].figures == {
        "value": 0.86, "min": 0.86, "max": 0.87, "reference": 0.9, "low": 0.88, "high": 0.92,
        "runs": 3,
    }  # fmt: skip
    assert by_name["latency_p95_ms"].message == (
        "latency_p95_ms 25 (3 runs 21..30) outside the band 10 + 100% [-inf, 20]"
    )
    drift = by_name["label_distribution"]
    assert not drift.passed
    distance = jensenshannon([0.5, 0.5], [0.9, 0.1], base=2)
    assert drift.message.startswith(f"label distribution: Jensen-Shannon distance {distance:.4f}")
    assert drift.message.endswith("> 0.1; most moved: a 0.5000->0.9000, b 0.5000->0.1000")


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("  accuracy: {value: 0.9, abs: 0.02}", "  acuracy: {value: 0.9, abs: 0.02}",
         ":6: metrics.acuracy: unknown metric (did you mean accuracy?)"),
        ("  accuracy: {value: 0.9, abs: 0.02}", "  accuracy: {value: 0.9, abs: 0.02, rel: 1}",
         ":6: metrics.accuracy: give exactly one of abs"),
        ("  accuracy: {value: 0.9, abs: 0.02}", "  accuracy: {abs: 0.02}",
         ":6: metrics.accuracy.value: missing: run `sluice test snapshot APP --update`"),
        ("side: upper", "side: up", ":7: metrics.latency_p95_ms.side: must be one of both"),
        ("repeats: 3", "repeats: 0", ":3: repeats: must be a positive integer, got 0"),
        ("max_js_distance: 0.1", "max_js: 0.1", ":4: max_js: unknown key (known: snapshot,"),
        ("snapshot: replay", "snapshot: other", ":1: snapshot: must be the file's name"),
    ],
)  # fmt: skip
def test_a_malformed_snapshot_names_the_file_line_and_field(
    tmp_path: Path, old: str, new: str, error: str
) -> None:
    """Every malformed part is an error with the file, the line and the field."""
    assert old in SNAPSHOT
    path = snapshot_file(tmp_path, SNAPSHOT.replace(old, new, 1))
    with pytest.raises(SuiteError) as caught:
        load_snapshot(path, tmp_path)
    assert str(caught.value).startswith(f"{path}{error}")


WORKFLOW = """
name: sort
version: 1
steps:
  - name: classify
    pool: default
    uses: classify
    options:
      field: text
      cascade: [{model: scripted}]
"""


def test_rows_that_flip_between_runs_are_reported_flaky_and_update_shows_what_moved(
    make_app: MakeApp, tmp_path: Path
) -> None:
    """A model that answers one row differently in its second run: that row is a flaky case
    (passed, with the labels seen); ``updated`` keeps the bands and says what moved."""
    app = make_app("pools: {default: {concurrency: 1}}\n", {"sort.yaml": WORKFLOW})
    (app / "data").mkdir()
    (app / "data" / "rows.csv").write_text("text,category\none,a\ntwo,b\nthree,a\nfour,b\n")
    # One warm-up answer, then two runs of four rows: the third row flips from a to b.
    script = ["a", "a", "b", "a", "b", "a", "b", "b", "b"]
    model = ScriptedModel("scripted", script)
    target = Target.load(app, model_overrides={"scripted": model})
    path = snapshot_file(tmp_path, SNAPSHOT.replace("repeats: 3", "repeats: 2"))
    snapshot = load_snapshot(path, app)
    measured = measure(snapshot, target)
    assert model.calls == 9
    assert measured.metrics["accuracy"] == [1.0, 0.75]
    assert measured.labels == {"a": 3 / 8, "b": 5 / 8}
    results = judge(snapshot, measured)
    flaky = [r for r in results if r.name.startswith("row ")]
    assert [(r.name, r.passed, r.flaky) for r in flaky] == [("row 3", True, True)]
    assert flaky[0].message == "row 3 ('three') flipped between runs: a, b"

    content, moved = updated(snapshot, measured)
    assert moved[0] == "accuracy: 0.9 -> 0.875 (-0.025)  outside the old band"
    assert moved[-1].startswith("labels: Jensen-Shannon distance 0.1")
    assert sorted(content["metrics"]) == sorted(METRICS)  # the rest added, default bands
    path.write_text(dump_snapshot(content))
    again = load_snapshot(path, app)
    assert again.metrics["accuracy"] == Band(0.875, abs=0.02)
    assert again.metrics["latency_p95_ms"].side == "upper"
    assert again.labels == {"a": 0.375, "b": 0.625}
