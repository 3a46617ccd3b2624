"""The telemetry sink: bounded buffers, batched writes, failures that never reach the work."""

from __future__ import annotations

from pathlib import Path

from sluice.store.sqlite import SqliteStore
from sluice.telemetry.settings import TelemetrySettings
from sluice.telemetry.tracing import Telemetry, current_traceparent


async def test_the_buffer_is_bounded_and_overflow_is_counted(tmp_path: Path) -> None:
    """Past ``buffer`` waiting spans new ones are dropped and counted; the rest are written."""
    store = SqliteStore(tmp_path / "sink.db")
    await store.open()
    telemetry = Telemetry(TelemetrySettings(buffer=3), store)
    try:
        with telemetry.span("root") as root:
            assert root is not None
            for n in range(4):
                with telemetry.span(f"child {n}"):
                    pass
        assert telemetry.sink.dropped == 2  # the root and the fourth child found no room
        assert await telemetry.flush() == 3
        spans = await store.trace_spans(format(root.get_span_context().trace_id, "032x"))
        assert [s.name for s in spans] == ["child 0", "child 1", "child 2"]
    finally:
        await store.aclose()
    # A store that fails (closed here) costs the rows, counted, and never raises.
    with telemetry.span("late"):
        pass
    assert await telemetry.flush() == 0
    assert telemetry.sink.dropped == 3


async def test_unsampled_traces_keep_their_id_but_store_nothing(tmp_path: Path) -> None:
    """At ratio 0 spans carry a trace id (for correlation) and are never buffered."""
    store = SqliteStore(tmp_path / "sink.db")
    await store.open()
    telemetry = Telemetry(TelemetrySettings(sample_ratio=0.0), store)
    try:
        with telemetry.span("root") as root:
            assert root is not None
            assert not root.is_recording()
            traceparent = current_traceparent()
        assert traceparent is not None
        assert traceparent.endswith("-00")  # not sampled, and says so downstream
        assert await telemetry.flush() == 0
    finally:
        await store.aclose()
