"""The throttle-model drill, short: a 429-ing provider at ten times its capacity, with and
without the reliability machinery, measured side by side in one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_chaos_flood import timing_aside
from tests.cli.test_cli_runtime import sluice

TRIAGE = Path(__file__).resolve().parents[2] / "examples" / "triage"


@pytest.mark.slow
def test_throttle_model_drill_contains_the_storm() -> None:
    """Guarded: every event completes with at most 1.1 model calls each (p95 is reported).

    Bare (plain retries): more calls than events, so the comparison shows what the
    machinery saves.
    """
    out = sluice("chaos", "throttle-model", "--app", str(TRIAGE), "--workflow", "triage",
                 "--data", str(TRIAGE / "data" / "replay.csv"), "--events", "300",
                 "--seconds", "3", "--json", timeout=240)  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["drill"] == "throttle-model", out.stderr[-3000:]
    timing_aside(report, out.returncode, {"p95_within_slo_1000_ms"})
    guarded, bare = report["guarded"], report["bare"]
    assert guarded["completed"] == guarded["accepted"] > 0
    assert guarded["calls_per_accepted"] <= 1.1
    assert bare["calls_per_accepted"] > guarded["calls_per_accepted"]
    assert bare["model_429s"] > guarded["model_429s"]
