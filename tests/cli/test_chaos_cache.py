"""The kill-cache drill, short: a real app whose shared cache's Redis is SIGKILLed under load.

The app is small on purpose: one classify step on a TF-IDF model trained (in about a second)
on four BANKING77 intents, so the drill's own run stays within a few seconds of load.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from tests.cli.test_chaos_flood import timing_aside
from tests.cli.test_cli_runtime import sluice
from tests.conftest import MakeApp

TRAIN = Path(__file__).resolve().parents[2] / "examples" / "triage" / "data" / "train.csv"
INTENTS = ("card_arrival", "lost_or_stolen_card", "exchange_rate", "top_up_failed")


SINK = '''
import os

async def sink(ctx, data):
    """Log every execution with one atomic append: a recount beside the drill's own."""
    fd = os.open(ctx.options["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{ctx.event_id}\\n".encode())
    finally:
        os.close(fd)
    return data
'''


def small_app(make_app: MakeApp, sink_log: Path) -> tuple[Path, Path]:
    """An app with one cached model step and a step logging each execution to ``sink_log``,
    and a CSV of tickets to send to it."""
    sink_step = f"""
              - name: sink
                pool: inference
                uses: "drill_sink:sink"
                options: {{log: "{sink_log}"}}
    """
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
            + sink_step
        },
        {"drill_sink.py": SINK},
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


def test_kill_cache_drill_passes_and_reports(make_app: MakeApp, tmp_path: Path) -> None:
    """Redis dies halfway: every event completes, no client error, the cache had hit before
    and the app counted its failures after."""
    sink_log = tmp_path / "sink.log"
    app_dir, tickets = small_app(make_app, sink_log)
    out = sluice("chaos", "kill-cache", "--app", str(app_dir), "--workflow", "classify",
                 "--data", str(tickets), "--events", "300", "--seconds", "5", "--json",
                 timeout=600)  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["drill"] == "kill-cache", out.stdout + out.stderr
    # Latency before and after the kill are the drill's figures, not this test's verdict.
    timing_aside(report, out.returncode,
                 {"lookup_after_kill_no_slower", "latency_after_kill_bounded"})  # fmt: skip
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
    assert report["lookups_after_kill"] > 0
    assert "killed redis-server" in out.stderr
    # Recounted from the sink, not the drill: 300 events, each run exactly once (no worker
    # died here), so none was lost and no resend made a second one.
    executions = Counter(sink_log.read_text().split())
    assert len(executions) == 300
    assert set(executions.values()) == {1}
