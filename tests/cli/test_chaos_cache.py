"""The kill-cache drill, short: a real app whose shared cache's Redis is SIGKILLed under load.

The app is small on purpose: one classify step on a TF-IDF model trained (in about a second)
on four BANKING77 intents, so the drill's own run stays within a few seconds of load.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.cli.test_cli_runtime import sluice
from tests.conftest import MakeApp

TRAIN = Path(__file__).resolve().parents[2] / "examples" / "triage" / "data" / "train.csv"
INTENTS = ("card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_failed")


def small_app(make_app: MakeApp) -> tuple[Path, Path]:
    """An app with one cached model step, and a CSV of tickets to send to it."""
    app_dir = make_app(
        """
        store: sqlite:///.sluice/app.db
        workflows: workflows
        pools:
          inference: {concurrency: 8, queue_limit: 5000}
        models:
          small: {kind: tfidf, train: train.csv, cv_folds: 0, calibration: none}
        caches:
          responses: {ttl_s: 600}
        """,
        {
            "classify.yaml": """
            name: classify
            version: 1
            budget_ms: 10000
            steps:
              - name: classify
                pool: inference
                uses: classify
                options: {field: text, cascade: [{model: small}]}
            """
        },
    )
    with TRAIN.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["category"] in INTENTS]
    with (app_dir / "train.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows(rows)
    tickets = app_dir / "tickets.csv"
    with tickets.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows(rows[:200])
    return app_dir, tickets


def test_kill_cache_drill_passes_and_reports(make_app: MakeApp) -> None:
    """Redis dies halfway: every event completes, no client error, the cache had hit before
    and the app counted its failures after."""
    app_dir, tickets = small_app(make_app)
    out = sluice("chaos", "kill-cache", "--app", str(app_dir), "--workflow", "classify",
                 "--data", str(tickets), "--events", "300", "--seconds", "5", "--json")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["drill"] == "kill-cache"
    assert report["passed"] is True
    assert (report["accepted"], report["completed"]) == (300, 300)
    assert (report["lost"], report["duplicates"], report["dead"]) == (0, 0, 0)
    assert report["client_errors"] == 0
    assert report["hit_rate_before_kill"] > 0
    # Nothing to hit once the store is gone (a reply read just before the kill may be counted
    # just after it).
    assert report["hit_rate_after_kill"] < 0.05
    assert report["cache_errors"] > 0
    assert report["events_before_kill"] > 0
    assert report["events_after_kill"] > 0
    assert report["p95_ms_after_kill"] <= report["p95_bound_ms"]
    assert report["lookups_after_kill"] > 0
    assert report["checks"]["lookup_after_kill_no_slower"] is True
    assert "killed redis-server" in out.stderr
