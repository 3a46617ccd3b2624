"""Progress on standard error for long commands: counts, rate, ETA; silent when asked."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sluice.cli.main import build_app
from sluice.cli.progress import Progress
from sluice.models.splits import read_examples, write_examples

DATA = Path(__file__).resolve().parents[2] / "examples" / "triage" / "data"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reports_count_rate_and_eta() -> None:
    """Each report shows done/total, the rate so far and the time left at that rate."""
    clock, out = Clock(), io.StringIO()
    with Progress("evaluated", 10, unit="rows", stream=out, clock=clock, every_s=0) as bar:
        clock.now += 2
        bar.advance(4)
        clock.now += 3
        bar.advance(6)
    assert out.getvalue().splitlines() == [
        "evaluated 4/10 (2.0 rows/s, ETA 3s)",
        "evaluated 10/10 (2.0 rows/s, 5s)",
    ]


def test_reports_are_throttled_but_the_last_is_always_shown() -> None:
    """Updates closer together than ``every_s`` are skipped, except the final one."""
    clock, out = Clock(), io.StringIO()
    with Progress("embedded", 3, stream=out, clock=clock, every_s=10) as bar:
        for _ in range(3):
            clock.now += 1
            bar.advance()
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["embedded 1/3", "embedded 3/3"]


def test_quiet_prints_nothing() -> None:
    """A quiet progress writes nothing, notes included."""
    out = io.StringIO()
    with Progress("trained", 2, quiet=True, stream=out) as bar:
        bar.note("small: fitting")
        bar.advance(2)
    assert out.getvalue() == ""


def test_notes_and_callback_form() -> None:
    """Notes go on their own line; ``progress(done, total)`` updates the total too."""
    clock, out = Clock(), io.StringIO()
    with Progress("embedded", 0, unit="texts", stream=out, clock=clock, every_s=0) as bar:
        bar.note("loading the embedder")
        clock.now += 1
        bar(50, 100)
    assert out.getvalue().splitlines() == [
        "loading the embedder",
        "embedded 50/100 (50.0 texts/s, ETA 1s)",
    ]


CONFIG = """\
models:
  first: {kind: tfidf, train: data/train.csv, price_per_call: 0.000001}
  second: {kind: tfidf, train: data/train.csv, price_per_call: 0.0001, c: 4.0}
pools: {cpu: {concurrency: 1}}
"""
WORKFLOW = """\
name: sort
steps:
  - name: classify
    uses: classify
    pool: cpu
    options:
      field: text
      cascade:
        - {model: first, threshold: 0.5}
        - {model: second}
"""


@pytest.fixture(scope="module")
def small_app(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A two-tier TF-IDF app on a 12-per-intent subset, and a small golden CSV."""
    app = tmp_path_factory.mktemp("progress") / "app"
    (app / "workflows").mkdir(parents=True)
    examples = read_examples(DATA / "train.csv")
    per: dict[str, int] = {}
    train = []
    for example in examples:
        per[example.label] = per.get(example.label, 0) + 1
        if per[example.label] <= 12:
            train.append(example)
    write_examples(app / "data" / "train.csv", train)
    write_examples(app / "golden.csv", read_examples(DATA / "validation.csv")[:40])
    (app / "sluice.yaml").write_text(CONFIG)
    (app / "workflows" / "sort.yaml").write_text(WORKFLOW)
    trained = CliRunner().invoke(build_app(), ["train", str(app)])
    assert trained.exit_code == 0, trained.output
    assert "models trained 2/2" in trained.stderr
    return app, app / "golden.csv"


def test_eval_shows_progress_unless_json_or_quiet(small_app: tuple[Path, Path]) -> None:
    """eval counts rows on standard error; --json and --quiet keep standard error clean."""
    app, golden = small_app
    runner = CliRunner()
    shown = runner.invoke(build_app(), ["eval", str(app), "--data", str(golden)])
    assert shown.exit_code == 0, shown.output
    assert re.search(r"evaluated 40/40 \([0-9.,]+ rows/s, \d+s\)", shown.stderr)
    assert shown.stdout.startswith("rows 40  accuracy ")
    as_json = runner.invoke(build_app(), ["eval", str(app), "--data", str(golden), "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["n"] == 40
    assert as_json.stderr == ""
    quiet = runner.invoke(build_app(), ["eval", str(app), "--data", str(golden), "--quiet"])
    assert quiet.exit_code == 0
    assert quiet.stderr == ""


def test_tune_as_json(small_app: tuple[Path, Path]) -> None:
    """tune --json prints the plan as one object and no progress."""
    app, golden = small_app
    result = CliRunner().invoke(
        build_app(), ["tune", str(app), "--data", str(golden), "--target", "0.1", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    plan = json.loads(result.stdout)
    assert list(plan) == ["workflow", "step", "thresholds", "accuracy", "escalation_rate",
                          "mean_cost", "target", "reached_target", "written"]  # fmt: skip
    assert (plan["workflow"], plan["step"], plan["written"]) == ("sort", "classify", None)
    assert len(plan["thresholds"]) == 1
    assert plan["reached_target"] is True
    shown = CliRunner().invoke(build_app(), ["tune", str(app), "--data", str(golden)])
    assert "tiers asked 2/2" in shown.stderr
