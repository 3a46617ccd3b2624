"""The TelemetryStore contract: the span store and the ledger, and the trace context that
events and jobs carry for it (hence the whole Store in the tests that write events)."""

from __future__ import annotations

import dataclasses
import time

import pytest

from sluice.errors import ConfigError
from sluice.store.base import (
    Completion,
    CostRecord,
    NewEvent,
    SpanRecord,
    Store,
    TelemetryStore,
)

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def _span(trace_id: str, span_id: str, start_ns: int, event_id: str | None = None) -> SpanRecord:
    return SpanRecord(trace_id, span_id, None, f"span {span_id}", "internal", start_ns,
                      start_ns + 1000, "ok", event_id, {"sluice.step": "s0", "n": 2})  # fmt: skip


def _cost(ts: float, tenant: str, model: str, cost: float, cached: bool = False) -> CostRecord:
    return CostRecord(ts, "e1", TRACE_ID, tenant, "wf", "classify", model, 10, 2, cost, cached)


async def test_the_traceparent_travels_from_event_to_every_job(store: Store) -> None:
    """An event's traceparent is kept with it and carried by its first and next jobs."""
    now = time.time()
    event = NewEvent("e1", "wf", "1", "t1", b"{}", "p0", now, now + 60, trace=TRACE)
    await store.insert_event(event)
    assert (await store.get_event("e1")).trace == TRACE
    (job,) = await store.claim("p0", 10, "w1", 30)
    assert job.trace == TRACE
    assert await store.complete(Completion(job, "s0", b"{}", now, now, "p1"))
    (second,) = await store.claim("p1", 10, "w1", 30)
    assert second.trace == TRACE
    assert await store.event_trace_id("e1") == TRACE_ID


async def test_the_flag_travels_as_metadata_from_event_to_every_job(store: Store) -> None:
    """An event's feature flag is kept beside its data, carried by its jobs, and survives a
    replay of the dead job; without one it is None."""
    now = time.time()
    await store.insert_event(NewEvent("f1", "wf", "1", "t1", b"{}", "p0", now, now + 60,
                                      flag="beta"))  # fmt: skip
    await store.insert_event(NewEvent("f2", "wf", "1", "t1", b"{}", "p0", now, now + 60))
    assert [(await store.get_event(e)).flag for e in ("f1", "f2")] == ["beta", None]
    jobs = {j.event_id: j for j in await store.claim("p0", 10, "w1", 30)}
    assert (jobs["f1"].flag, jobs["f2"].flag) == ("beta", None)
    assert await store.complete(Completion(jobs["f1"], "s0", b"{}", now, now, "p1"))
    (second,) = await store.claim("p1", 10, "w1", 30)
    assert second.flag == "beta"
    await store.bury(second, "failed")
    assert await store.replay("f1", time.time() + 60)
    (again,) = await store.claim("p1", 10, "w1", 30)
    assert again.flag == "beta"


async def test_an_event_without_trace_has_none(store: Store) -> None:
    """Events accepted without tracing carry no trace, and their jobs neither."""
    now = time.time()
    await store.insert_event(NewEvent("e2", "wf", "1", "t1", b"{}", "p0", now, now + 60))
    (job,) = await store.claim("p0", 10, "w1", 30)
    assert job.trace is None
    assert await store.event_trace_id("e2") is None


async def test_spans_are_stored_and_read_by_trace(store: TelemetryStore) -> None:
    """Spans come back per trace in start order, attributes intact; events find their trace."""
    other = "0af7651916cd43dd8448eb211c80319c"
    await store.write_telemetry(
        [_span(TRACE_ID, "b" * 16, 2000), _span(TRACE_ID, "a" * 16, 1000, "e9"),
         _span(other, "c" * 16, 1500)], [],
    )  # fmt: skip
    spans = await store.trace_spans(TRACE_ID)
    assert [s.span_id for s in spans] == ["a" * 16, "b" * 16]
    assert spans[0] == _span(TRACE_ID, "a" * 16, 1000, "e9")
    assert await store.event_trace_id("e9") == TRACE_ID
    assert await store.trace_spans("f" * 32) == []


async def test_cost_totals_group_and_filter_by_time(store: TelemetryStore) -> None:
    """The ledger sums calls, cache hits, tokens and cost per group since a time."""
    now = time.time()
    await store.write_telemetry([], [
        _cost(now, "acme", "small", 0.001), _cost(now, "acme", "large", 0.01),
        _cost(now, "bank", "small", 0.0, cached=True), _cost(now - 7200, "acme", "large", 1.0),
    ])  # fmt: skip
    by_tenant = await store.cost_totals("tenant", now - 3600)
    assert [(t.key, t.calls, t.cached) for t in by_tenant] == [("acme", 2, 0), ("bank", 1, 1)]
    assert by_tenant[0].cost == pytest.approx(0.011)
    assert (by_tenant[0].input_tokens, by_tenant[0].output_tokens) == (20, 4)
    everything = await store.cost_totals("model", 0)
    assert [(t.key, round(t.cost, 4)) for t in everything] == [("large", 1.01), ("small", 0.001)]
    with pytest.raises(ConfigError, match="grouped by tenant, workflow, model, step"):
        await store.cost_totals("cost; DROP TABLE costs", 0)


async def test_purge_bounds_spans_and_ledger(store: TelemetryStore) -> None:
    """Purging keeps the newest spans up to the cap and drops what is past its age."""
    now_ns = time.time_ns()
    spans = [_span(TRACE_ID, f"{i:016x}", now_ns + i) for i in range(10)]
    old = dataclasses.replace(_span(TRACE_ID, "e" * 16, 0), start_ns=1)
    await store.write_telemetry(
        [old, *spans], [_cost(1.0, "a", "m", 1.0), _cost(time.time(), "a", "m", 2.0)]
    )
    deleted = await store.purge_telemetry(5, spans_before=time.time() - 60, costs_before=10.0)
    kept = await store.trace_spans(TRACE_ID)
    assert [s.span_id for s in kept] == [f"{i:016x}" for i in range(5, 10)]
    assert deleted == 7
    assert [t.calls for t in await store.cost_totals("tenant", 0)] == [1]
