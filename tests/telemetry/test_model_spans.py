"""Model-call and cache-lookup spans after the GenAI conventions, on a real chat endpoint."""

from __future__ import annotations

from pathlib import Path

from sluice.cache.backend import MemoryBackend
from sluice.cache.response import ResponseCache
from sluice.models.base import ModelRequest
from sluice.models.cascade import Cascade, Tier
from sluice.models.chat_model import ChatModel
from sluice.store.sqlite import SqliteStore
from sluice.telemetry.settings import TelemetrySettings
from sluice.telemetry.tracing import Telemetry
from tests.models.test_openai_client import LABELS, Serve, answerer, client, serve

__all__ = ["answerer", "serve"]  # fixtures used below


async def test_chat_calls_are_gen_ai_spans_and_cache_hits_cost_nothing(
    serve: Serve, tmp_path: Path
) -> None:
    """A chat call carries operation, provider, model, tokens and cost; the repeat is a hit."""
    store = SqliteStore(tmp_path / "spans.db")
    await store.open()
    telemetry = Telemetry(TelemetrySettings(), store)
    try:
        async with serve() as server, client(server) as http:
            model = ResponseCache(MemoryBackend(max_entries=10)).wrap(
                ChatModel(http, name="sim-small", labels=LABELS)
            )
            cascade = Cascade([Tier(model)])
            with telemetry.span("step classify") as step:
                assert step is not None
                for _ in range(2):
                    await cascade.run(ModelRequest("my card has still not arrived"))
        await telemetry.flush()
        spans = await store.trace_spans(format(step.get_span_context().trace_id, "032x"))
    finally:
        await store.aclose()
    calls = [s for s in spans if s.name == "chat sim-small"]
    lookups = [s for s in spans if s.name == "cache.lookup response"]
    assert len(calls) == 2
    assert [s.attributes["sluice.cache.hit"] for s in lookups] == [False, True]
    first, repeat = (c.attributes for c in calls)
    assert first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.provider.name"] == "127.0.0.1"
    assert first["gen_ai.request.model"] == "sim-small"
    assert first["gen_ai.usage.input_tokens"] > 0
    assert first["gen_ai.usage.output_tokens"] > 0
    assert first["sluice.cost"] > 0
    assert (repeat["sluice.cost"], repeat["sluice.cache.hit"]) == (0.0, True)
    assert {s.parent_id for s in lookups} == {c.span_id for c in calls}
