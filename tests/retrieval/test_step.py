"""The ``retrieve`` built-in step, run through a real app on a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluice.app import SluiceApp
from sluice.cache import MemoryBackend, RetrievalCache
from sluice.config import parse_settings
from sluice.models.splits import Example
from sluice.retrieval import FeatureEmbedder, IndexItem, VectorIndex, build_index
from sluice.store.base import EventState
from sluice.workflow import Step, Workflow, WorkflowRegistry
from sluice.workflow.builtins import resolve_builtin

AppFactory = Callable[..., Any]


@pytest.fixture(scope="module")
def index(wordllama: FeatureEmbedder, tickets: list[IndexItem]) -> VectorIndex:
    """The 616-ticket wordllama index."""
    return build_index(tickets, wordllama, name="tickets")


@pytest.fixture
async def make_app(tmp_path: Path) -> AsyncIterator[AppFactory]:
    """Start an app running one retrieve step with the given options and services."""
    apps: list[SluiceApp] = []

    async def make(options: dict[str, Any], services: dict[str, Any]) -> SluiceApp:
        retrieve = resolve_builtin("retrieve")
        assert retrieve is not None
        workflow = Workflow(
            name="triage",
            version="1",
            steps=(
                Step(name="similar", pool="retrieval", fn=retrieve, options=options, retries=0),
            ),
            budget_ms=10_000,
        )
        raw = {
            "store": f"sqlite:///{tmp_path / 'rt.db'}",
            "pools": {"retrieval": {"concurrency": 2}},
            "runtime": {"poll_ms": 20, "heartbeat_ms": 200},
        }
        settings = parse_settings(raw, tmp_path, environ={})
        app = SluiceApp.from_settings(
            settings, registry=WorkflowRegistry([workflow]), services=services
        )
        await app.start()
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.stop()


async def run(app: SluiceApp, data: dict[str, Any]) -> Any:
    """Submit one event and wait for its record."""
    return await app.runtime.wait(await app.runtime.submit("triage", data), 10)


class TestRetrieveStep:
    async def test_adds_neighbours(
        self, make_app: AppFactory, index: VectorIndex, queries: list[Example]
    ) -> None:
        """The step keeps the input and adds k neighbours, best first, with every field."""
        app = await make_app({"index": "tickets", "k": 3}, {"indexes": {"tickets": index}})
        example = next(e for e in queries if e.label == "lost_or_stolen_card")
        record = await run(app, {"text": example.text, "ticket": 7})
        assert record.state is EventState.DONE
        out = orjson.loads(record.result)
        assert out["ticket"] == 7
        neighbours = out["neighbours"]
        assert len(neighbours) == 3
        assert set(neighbours[0]) == {"id", "text", "intent", "resolution", "score"}
        assert [n["score"] for n in neighbours] == sorted(
            (n["score"] for n in neighbours), reverse=True
        )
        assert neighbours == [n.as_dict() for n in index.search(example.text, 3)]

    async def test_uses_the_retrieval_cache(self, make_app: AppFactory, index: VectorIndex) -> None:
        """A repeated ticket (modulo spacing) is served from the cache; a new k is a miss."""
        cache = RetrievalCache(MemoryBackend(100))
        app = await make_app(
            {"k": 2, "field": "body"}, {"indexes": {"tickets": index}, "retrieval_cache": cache}
        )
        first = await run(app, {"body": "I lost my card yesterday"})
        second = await run(app, {"body": "  I lost my card   yesterday\n"})
        assert orjson.loads(first.result) == {
            **orjson.loads(second.result),
            "body": "I lost my card yesterday",
        }
        stats = cache.stats()
        assert (stats.hits, stats.misses, stats.entries) == (1, 1, 1)

    async def test_min_score_filters(self, make_app: AppFactory, index: VectorIndex) -> None:
        """min_score drops weak neighbours."""
        app = await make_app({"k": 5, "min_score": 0.99}, {"indexes": {"tickets": index}})
        record = await run(app, {"text": "zebra crossing poetry"})
        assert orjson.loads(record.result)["neighbours"] == []

    @pytest.mark.parametrize(
        ("options", "data", "message"),
        [
            ({"index": "faq"}, {"text": "hi"}, "unknown index 'faq' (wired: ['tickets'])"),
            ({"k": 0}, {"text": "hi"}, "k must be 1..50"),
            ({}, {"subject": "hi"}, "field 'text' must be a string, got NoneType"),
        ],
    )
    async def test_bad_use_is_not_retried(
        self,
        make_app: AppFactory,
        index: VectorIndex,
        options: dict[str, Any],
        data: dict[str, Any],
        message: str,
    ) -> None:
        """Misconfiguration dead-letters the event at once with a clear reason."""
        app = await make_app(options, {"indexes": {"tickets": index}})
        record = await run(app, data)
        assert record.state is EventState.DEAD
        assert message in record.error

    async def test_missing_service(self, make_app: AppFactory) -> None:
        """An app that wired no indexes says so."""
        app = await make_app({}, {})
        record = await run(app, {"text": "hi"})
        assert record.state is EventState.DEAD
        assert "needs service 'indexes'" in record.error
