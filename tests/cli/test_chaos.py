"""The kill-worker drill, short: real gateway and workers, SIGKILLs, nothing lost or doubled."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.cli.test_cli_runtime import sluice
from tests.conftest import MakeApp

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"


CONFIG = """
store: sqlite:///.sluice/drill.db
pools:
  cpu: {concurrency: 8, queue_limit: 10000}
  sink: {concurrency: 4, queue_limit: 10000}
runtime: {heartbeat_ms: 200, poll_ms: 20}
"""
SINK_CONCURRENCY = 4
# %s: the sink's execution log, outside the drill's own (deleted) directory.
WORKFLOW = """
name: greet
budget_ms: 60000
input_schema: {type: object, required: [name]}
steps:
  - {name: wait, pool: cpu, uses: sleep, options: {ms: 5}}
  - {name: sink, pool: sink, uses: "drill_steps:sink", options: {log: "%s"}}
"""
STEPS = '''
import os

async def sink(ctx, data):
    """Log every execution (event id and input) with one atomic append."""
    fd = os.open(ctx.options["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{ctx.event_id}\\t{data['name']}\\n".encode())
    finally:
        os.close(fd)
    return data
'''


def test_kill_worker_drill_passes_and_reports(make_app: MakeApp, tmp_path: Path) -> None:
    """Two kills during 400 events: every accepted event completes, none twice.

    The drill's own accounting is checked against a recount from the sink: each input
    reached the sink under exactly one event (a resend made no second event), and only
    the sink jobs in flight at a kill ran again."""
    sink_log = tmp_path / "sink.log"
    app_dir = make_app(CONFIG, {"greet.yaml": WORKFLOW % sink_log}, {"drill_steps.py": STEPS})
    out = sluice("chaos", "kill-worker", "--app", str(app_dir), "--workflow", "greet",
                 "--events", "400", "--kills", "2", "--json", timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["drill"] == "kill-worker"
    assert report["passed"] is True
    assert (report["accepted"], report["completed"]) == (400, 400)
    assert (report["lost"], report["duplicates"], report["dead"]) == (0, 0, 0)
    assert report["kills"] == 2
    assert "killed worker" in out.stderr
    runs = [tuple(line.split("\t")) for line in sink_log.read_text().splitlines()]
    events_per_input: dict[str, set[str]] = {}
    for event_id, name in runs:
        events_per_input.setdefault(name, set()).add(event_id)
    assert set(events_per_input) == {f"drill {i}" for i in range(400)}  # none lost
    assert {len(ids) for ids in events_per_input.values()} == {1}  # no duplicate events
    executions = Counter(event_id for event_id, _ in runs)
    assert sum(executions.values()) - len(executions) <= 2 * SINK_CONCURRENCY  # re-runs


def test_unknown_drill_is_refused() -> None:
    """A drill name that does not exist exits 2 with the known names."""
    out = sluice("chaos", "flood-the-moon", "--app", str(HELLO))
    assert out.returncode == 2
    assert "kill-worker" in out.stderr
