"""The trace context travels with the job through the store to a worker in another process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.store.base import EventState
from tests.conftest import MakeApp

CONFIG = """
store: sqlite:///.sluice/split.db
pools: {work: {concurrency: 2}}
runtime: {poll_ms: 20, heartbeat_ms: 200}
telemetry: {flush_ms: 20}
"""
WORKFLOW = """
name: pair
input_schema: {type: object}
steps:
  - {name: first, pool: work, uses: noop}
  - {name: second, pool: work, uses: noop}
"""


def _start_worker(app_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sluice", "worker", str(app_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


async def test_a_worker_process_continues_the_accepting_process_trace(
    make_app: MakeApp,
) -> None:
    """Accepted here (no workers), run by `sluice worker`: one trace, steps under accept."""
    app_dir = make_app(CONFIG, {"pair.yaml": WORKFLOW})
    worker = _start_worker(app_dir)
    try:
        async with SluiceApp.from_settings(load_settings(app_dir), run_pools=()) as app:
            with app.telemetry.span("accept pair") as accept:
                assert accept is not None
                event_id = await app.runtime.submit("pair", {})
            record = await app.runtime.wait(event_id, 30)
            assert record.state is EventState.DONE, record.error
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(worker.communicate, timeout=30)
    assert worker.returncode == 0, err.decode()
    async with SluiceApp.from_settings(load_settings(app_dir), run_pools=()) as reader:
        trace_id = await reader.store.event_trace_id(event_id)
        spans = await reader.store.trace_spans(trace_id or "")
    context = accept.get_span_context()
    assert trace_id == format(context.trace_id, "032x")
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {"accept pair", "step first", "step second"}
    # Both steps ran in the worker process, as children of the span stored with the event.
    assert by_name["step first"].parent_id == format(context.span_id, "016x")
    assert by_name["step second"].parent_id == format(context.span_id, "016x")
