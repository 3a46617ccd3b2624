"""Behavioral snapshots: a workflow's metrics on a labelled set, kept with tolerance bands.

A snapshot lives in ``APP_DIR/tests/snapshots/NAME.yaml``; ``sluice test snapshot APP
--update`` (re)writes its values and keeps its bands::

    snapshot: replay
    workflow: triage             # optional: the workflow whose classify step is measured
    data: data/replay.csv        # text,category CSV, relative to the app directory
    rows: 500                    # optional: an evenly spaced subset of this many rows
    repeats: 3                   # runs; each metric is judged on their median and interval
    max_js_distance: 0.05        # drift allowed in the predicted label distribution
    metrics:                     # metric: reference value and band (abs or rel; side)
      accuracy: {value: 0.9312, abs: 0.01}
      cost_per_1k: {value: 0.0201, rel: 0.25}
      latency_p95_ms: {value: 12.5, rel: 2.0, side: upper}   # only a rise fails
    labels: {card_arrival: 0.0129, ...}                      # predicted shares

The metrics are those of ``sluice eval`` (accuracy, macro-F1, escalation rate, cost per
1,000, latency percentiles) and the final score's quantiles
(:data:`~sluice.suites.labelled.METRICS`). A metric passes when the median of the repeats
lies inside its band; when some repeat lies outside, it passes but is flagged flaky. The
label distribution passes when its Jensen-Shannon distance to the snapshot's stays at most
``max_js_distance``. Rows whose label changes between repeats are reported as flaky cases.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sluice.models.base import ModelRequest
from sluice.models.cascade import Cascade
from sluice.models.splits import read_examples
from sluice.suites.drift import js_distance
from sluice.suites.gate import Gate, GateSpec
from sluice.suites.labelled import METRICS, label_shares, run_rows, snapshot_metrics
from sluice.suites.manifest import check_keys
from sluice.suites.results import CaseResult
from sluice.suites.target import Target
from sluice.suites.yamlfile import LineMap, SuiteError, load_yaml, unknown, where

SNAPSHOT_DIR = "snapshots"
SIDES = ("both", "upper", "lower")
_KEYS = ("snapshot", "workflow", "data", "rows", "repeats", "max_js_distance", "metrics", "labels")
_BAND_KEYS = ("value", "abs", "rel", "side")
#: Flaky rows reported one by one; past this, one more result counts the rest.
MAX_FLAKY_ROWS = 50
#: Bands a new snapshot starts with (``--update`` keeps whatever the file has): the quality
#: metrics absolute, cost relative, latency only upward and wide (it is the machine's too).
DEFAULT_BANDS: Mapping[str, Mapping[str, Any]] = {
    "accuracy": {"abs": 0.01},
    "macro_f1": {"abs": 0.015},
    "escalation_rate": {"abs": 0.03},
    "cost_per_1k": {"rel": 0.25},
    "latency_p50_ms": {"rel": 3.0, "side": "upper"},
    "latency_p95_ms": {"rel": 3.0, "side": "upper"},
    **{m: {"abs": 0.05} for m in METRICS if m.startswith("score_")},
}
DEFAULT_MAX_JS = 0.05
DEFAULT_REPEATS = 3


@dataclass(frozen=True, slots=True)
class Band:
    """A metric's reference ``value`` and how far it may move: ``abs`` or ``rel`` (a share of
    the value), on ``side`` both, upper (only a rise fails) or lower."""

    value: float
    abs: float | None = None
    rel: float | None = None
    side: str = "both"

    @property
    def width(self) -> float:
        """The allowed distance from the value."""
        return self.abs if self.abs is not None else (self.rel or 0.0) * abs(self.value)

    @property
    def low(self) -> float:
        """The lowest value that passes (-inf when only a rise fails)."""
        return float("-inf") if self.side == "upper" else self.value - self.width

    @property
    def high(self) -> float:
        """The highest value that passes (inf when only a drop fails)."""
        return float("inf") if self.side == "lower" else self.value + self.width

    def holds(self, value: float) -> bool:
        """Whether ``value`` lies inside the band (the edges included, up to rounding)."""
        slack = 1e-9 * max(1.0, abs(self.value))
        return self.low - slack <= value <= self.high + slack

    def describe(self) -> str:
        """``0.9312 ± 0.0100`` / ``12.5 + 200%`` and the like."""
        size = f"{self.abs:g}" if self.abs is not None else f"{(self.rel or 0) * 100:g}%"
        sign = {"both": "±", "upper": "+", "lower": "-"}[self.side]
        return f"{self.value:g} {sign} {size}"

    def spec(self) -> dict[str, Any]:
        """The band as a snapshot file writes it."""
        out: dict[str, Any] = {"value": self.value}
        if self.abs is not None:
            out["abs"] = self.abs
        if self.rel is not None:
            out["rel"] = self.rel
        if self.side != "both":
            out["side"] = self.side
        return out


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A parsed snapshot file."""

    name: str
    path: Path
    data: Path
    data_spec: str  # ``data`` as the file gives it (relative to the app directory)
    workflow: str | None = None
    rows: int | None = None
    repeats: int = DEFAULT_REPEATS
    max_js_distance: float = DEFAULT_MAX_JS
    metrics: Mapping[str, Band] = field(default_factory=dict)
    labels: Mapping[str, float] = field(default_factory=dict)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def snapshot_path(tests_dir: Path, name: str) -> Path:
    """Where snapshot ``name`` lives."""
    return tests_dir / SNAPSHOT_DIR / f"{name}.yaml"


def load_snapshot(path: Path, app_dir: Path, *, require_values: bool = True) -> Snapshot:
    """Parse and check a snapshot file (errors name the file, line and field). With
    ``require_values=False`` (an update), metrics may lack their ``value``."""
    raw = load_yaml(path)
    if not isinstance(raw, LineMap):
        raise SuiteError(f"{path}:1: a snapshot must be a mapping ({', '.join(_KEYS)})")

    def at(line: int, name: str, message: str) -> SuiteError:
        return SuiteError(f"{where(path, line, name)}: {message}")

    for key in raw:
        if key not in _KEYS:
            raise at(raw.line_of(key), str(key), unknown(key, _KEYS))
    for key in ("snapshot", "data"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise at(raw.line_of(key), key, "missing or not a non-empty string")
    if raw["snapshot"] != path.stem:
        raise at(raw.line_of("snapshot"), "snapshot", f"must be the file's name, {path.stem!r}")
    workflow = raw.get("workflow")
    if workflow is not None and (not isinstance(workflow, str) or not workflow):
        raise at(raw.line_of("workflow"), "workflow", "must be a workflow name")
    for key in ("rows", "repeats"):
        if key in raw and not _positive_int(raw[key]):
            raise at(raw.line_of(key), key, f"must be a positive integer, got {raw[key]!r}")
    max_js = raw.get("max_js_distance", DEFAULT_MAX_JS)
    if not _number(max_js) or not 0 <= max_js <= 1:
        raise at(raw.line_of("max_js_distance"), "max_js_distance", "must be a number in 0..1")
    metrics_raw = raw.get("metrics")
    if not isinstance(metrics_raw, LineMap) or not metrics_raw:
        raise at(
            raw.line_of("metrics"), "metrics", f"must map metrics ({', '.join(METRICS)}) to bands"
        )
    metrics: dict[str, Band] = {}
    for name, band in metrics_raw.items():
        line = metrics_raw.line_of(name)
        if name not in METRICS:
            raise at(line, f"metrics.{name}", unknown(name, METRICS, "metric"))
        metrics[name] = _band(band, f"metrics.{name}", line, at, require_values)
    labels_raw = raw.get("labels") or {}
    if not isinstance(labels_raw, Mapping) or not all(
        _number(v) and v >= 0 for v in labels_raw.values()
    ):
        raise at(raw.line_of("labels"), "labels", "must map each label to its share (>= 0)")
    if require_values and not labels_raw:
        raise at(raw.line, "labels", "missing: run `sluice test snapshot APP --update`")
    return Snapshot(
        name=raw["snapshot"],
        path=path,
        data=app_dir / raw["data"],
        data_spec=raw["data"],
        workflow=workflow,
        rows=raw.get("rows"),
        repeats=raw.get("repeats", DEFAULT_REPEATS),
        max_js_distance=float(max_js),
        metrics=metrics,
        labels={str(k): float(v) for k, v in labels_raw.items()},
    )


def _band(
    raw: Any, name: str, line: int, at: Callable[[int, str, str], SuiteError], need_value: bool
) -> Band:
    if not isinstance(raw, LineMap):
        raise at(line, name, "must be a mapping: {value: V, abs: A} or {value: V, rel: R}")
    for key in raw:
        if key not in _BAND_KEYS:
            raise at(
                raw.line_of(key),
                f"{name}.{key}",
                unknown(key, _BAND_KEYS),
            )
    if ("abs" in raw) == ("rel" in raw):
        raise at(line, name, "give exactly one of abs (a distance) or rel (a share of the value)")
    for key in ("abs", "rel"):
        if key in raw and (not _number(raw[key]) or raw[key] < 0):
            raise at(raw.line_of(key), f"{name}.{key}", f"must be a number >= 0, got {raw[key]!r}")
    if "value" in raw and not _number(raw["value"]):
        raise at(raw.line_of("value"), f"{name}.value", f"must be a number, got {raw['value']!r}")
    if need_value and "value" not in raw:
        raise at(line, f"{name}.value", "missing: run `sluice test snapshot APP --update`")
    side = raw.get("side", "both")
    if side not in SIDES:
        raise at(
            raw.line_of("side"), f"{name}.side", f"must be one of {', '.join(SIDES)}, got {side!r}"
        )
    return Band(
        value=float(raw.get("value", 0.0)),
        abs=None if "abs" not in raw else float(raw["abs"]),
        rel=None if "rel" not in raw else float(raw["rel"]),
        side=side,
    )


@dataclass(frozen=True, slots=True)
class Measurement:
    """What the repeats measured: each metric's values (one per repeat), the pooled label
    shares, the flipping rows (index, text, labels seen) and the seconds per repeat."""

    metrics: Mapping[str, Sequence[float]]
    labels: Mapping[str, float]
    flaky_rows: Sequence[tuple[int, str, tuple[str | None, ...]]]
    seconds: Sequence[float]
    rows: int

    def median(self, metric: str) -> float:
        """The metric's median over the repeats."""
        return float(statistics.median(self.metrics[metric]))


def subset(count: int, rows: int | None) -> list[int]:
    """Indices of an evenly spaced subset of ``rows`` out of ``count`` (all when None)."""
    if rows is None or rows >= count:
        return list(range(count))
    return [i * count // rows for i in range(rows)]


def measure(
    snapshot: Snapshot, target: Target, on_repeat: Callable[[int], None] | None = None
) -> Measurement:
    """Run the snapshot's rows through the workflow's cascade ``repeats`` times."""
    try:
        examples = read_examples(snapshot.data)
    except (OSError, ValueError) as exc:
        raise SuiteError(f"{snapshot.path}: data {snapshot.data}: {exc}") from None
    if not examples:
        raise SuiteError(f"{snapshot.path}: data {snapshot.data} has no rows")
    chosen = [examples[i] for i in subset(len(examples), snapshot.rows)]
    texts, gold = [e.text for e in chosen], [e.label for e in chosen]
    cascade = target.cascade(snapshot.workflow)
    # Each tier answers once before the clock starts: a model's first call loads it (the
    # large one loads its sentence encoder), which is start-up, not the latency of a row.
    asyncio.run(_warm_up(cascade, texts[0]))
    values: dict[str, list[float]] = {m: [] for m in METRICS}
    answers: list[list[str | None]] = []
    seconds = []
    for repeat in range(snapshot.repeats):
        started = time.perf_counter()
        outcomes = asyncio.run(run_rows(cascade, texts))
        seconds.append(time.perf_counter() - started)
        for metric, value in snapshot_metrics(outcomes, gold).items():
            values[metric].append(value)
        answers.append([o.label for o in outcomes])
        if on_repeat is not None:
            on_repeat(repeat + 1)
    flaky = [
        (i, texts[i], tuple(run[i] for run in answers))
        for i in range(len(texts))
        if len({run[i] for run in answers}) > 1
    ]
    pooled = label_shares([label for run in answers for label in run])
    return Measurement(values, pooled, flaky, seconds, len(texts))


async def _warm_up(cascade: Cascade, text: str) -> None:
    for tier in cascade.tiers:
        await tier.model.predict(ModelRequest(text=text))


def judge(snapshot: Snapshot, measured: Measurement, gate: str = "snapshot") -> list[CaseResult]:
    """One result per metric of the snapshot, one for the label distribution and one per
    flipping row."""
    seconds = sum(measured.seconds)
    each = seconds / (len(snapshot.metrics) + 1)
    runs = len(measured.seconds)
    results = []
    for metric, band in snapshot.metrics.items():
        values = measured.metrics[metric]
        median = measured.median(metric)
        low, high = min(values), max(values)
        passed = band.holds(median)
        unstable = passed and not (band.holds(low) and band.holds(high))
        interval = f"{runs} runs {low:.6g}..{high:.6g}"
        message = (
            f"{metric} {median:.6g} ({interval})"
            + (" inside" if passed else " outside")
            + f" the band {band.describe()} [{band.low:.6g}, {band.high:.6g}]"
            + (": some runs fall outside it" if unstable else "")
        )
        results.append(
            CaseResult(
                gate=gate,
                suite=snapshot.name,
                name=metric,
                passed=passed,
                message=message,
                seconds=each,
                figures={
                    "value": median,
                    "min": low,
                    "max": high,
                    "reference": band.value,
                    "low": band.low,
                    "high": band.high,
                    "runs": runs,
                },
                flaky=unstable,
            )
        )
    distance = js_distance(snapshot.labels, measured.labels)
    moved = sorted(
        set(snapshot.labels) | set(measured.labels),
        key=lambda k: (-abs(measured.labels.get(k, 0.0) - snapshot.labels.get(k, 0.0)), k),
    )[:3]
    movers = ", ".join(
        f"{k} {snapshot.labels.get(k, 0.0):.4f}->{measured.labels.get(k, 0.0):.4f}" for k in moved
    )
    passed = distance <= snapshot.max_js_distance
    results.append(
        CaseResult(
            gate=gate,
            suite=snapshot.name,
            name="label_distribution",
            passed=passed,
            message=f"label distribution: Jensen-Shannon distance {distance:.4f}"
            f" {'<=' if passed else '>'} {snapshot.max_js_distance:g}; most moved: {movers}",
            seconds=each,
            figures={"js_distance": round(distance, 6), "max": snapshot.max_js_distance},
        )
    )
    for index, text, labels in measured.flaky_rows[:MAX_FLAKY_ROWS]:
        results.append(
            CaseResult(
                gate=gate,
                suite=snapshot.name,
                name=f"row {index + 1}",
                passed=True,
                message=f"row {index + 1} ({text[:60]!r}) flipped between runs:"
                f" {', '.join(str(label) for label in labels)}",
                seconds=0.0,
                figures={"row": index + 1, "labels": " | ".join(map(str, labels))},
                flaky=True,
            )
        )
    extra = len(measured.flaky_rows) - MAX_FLAKY_ROWS
    if extra > 0:
        results.append(
            CaseResult(
                gate=gate,
                suite=snapshot.name,
                name="more flaky rows",
                passed=True,
                message=f"{extra} more rows flipped between runs",
                seconds=0.0,
                figures={"rows": extra},
                flaky=True,
            )
        )
    return results


def updated(snapshot: Snapshot, measured: Measurement) -> tuple[dict[str, Any], list[str]]:
    """The snapshot file's new content from ``measured`` (bands kept, defaults for new
    metrics) and what moved, one line per metric and one for the labels."""
    metrics: dict[str, Any] = {}
    moved = []
    # Every metric is kept: those the file bands, then the rest with the default bands.
    names = [*snapshot.metrics, *(m for m in METRICS if m not in snapshot.metrics)]
    for metric in names:
        old = snapshot.metrics.get(metric)
        new = round(measured.median(metric), 6)
        spec = old.spec() if old is not None else {"value": 0.0, **DEFAULT_BANDS[metric]}
        spec["value"] = new
        metrics[metric] = spec
        if old is None or not snapshot.labels:
            moved.append(f"{metric}: {new:.6g} (new)")
        else:
            delta = new - old.value
            within = "" if old.holds(new) else "  outside the old band"
            moved.append(f"{metric}: {old.value:.6g} -> {new:.6g} ({delta:+.6g}){within}")
    labels = {k: round(v, 6) for k, v in measured.labels.items()}
    if snapshot.labels:
        distance = js_distance(snapshot.labels, measured.labels)
        moved.append(f"labels: Jensen-Shannon distance {distance:.4f} from the old distribution")
    else:
        moved.append(f"labels: {len(labels)} labels (new)")
    content: dict[str, Any] = {"snapshot": snapshot.name}
    if snapshot.workflow is not None:
        content["workflow"] = snapshot.workflow
    content["data"] = snapshot.data_spec
    if snapshot.rows is not None:
        content["rows"] = snapshot.rows
    content["repeats"] = snapshot.repeats
    content["max_js_distance"] = snapshot.max_js_distance
    return content | {"metrics": metrics, "labels": labels}, moved


def dump_snapshot(content: Mapping[str, Any]) -> str:
    """A snapshot file's text: a header, then ``content`` in its order."""
    header = (
        "# A behavioral snapshot (docs/testing.md): `sluice test snapshot APP --update`\n"
        "# rewrites the values and labels and keeps the bands.\n"
    )
    rest = {k: v for k, v in content.items() if k != "labels"}
    text = header + yaml.safe_dump(rest, sort_keys=False, width=100, default_flow_style=None)
    if "labels" in content:  # one label a line: a diff of the file shows which share moved
        labels = {"labels": dict(content["labels"])}
        text += yaml.safe_dump(labels, sort_keys=False, default_flow_style=False)
    return text


@dataclass(frozen=True, slots=True)
class SnapshotGate:
    """The ``snapshot`` gate: measures each named snapshot and judges it on its bands."""

    snapshots: tuple[str, ...]
    tests_dir: Path
    name: str = "snapshot"

    def run(self, target: Target) -> list[CaseResult]:
        """Load every snapshot first (a malformed one fails before any run), then measure."""
        loaded = [
            load_snapshot(snapshot_path(self.tests_dir, name), target.app_dir)
            for name in self.snapshots
        ]
        results: list[CaseResult] = []
        for snapshot in loaded:
            results.extend(judge(snapshot, measure(snapshot, target), self.name))
        return results


def snapshot_gate(spec: GateSpec) -> Gate:
    """Build the snapshot gate from ``snapshot: {snapshots: [...]}``."""
    check_keys(spec, ("snapshots",), required=("snapshots",))
    return SnapshotGate(tuple(spec.names("snapshots")), spec.tests_dir, spec.name)
