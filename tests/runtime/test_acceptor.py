"""The one way into the runtime: ``Acceptor.take`` and the order of its parts."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.errors import AdmissionError
from sluice.runtime.acceptor import InputRejectedError, Submission
from sluice.store.base import IdempotencyClaim
from tests.conftest import MakeApp

CONFIG = """
store: sqlite:///.sluice/acceptor.db
pools:
  cpu: {concurrency: 1, queue_limit: 2}
"""
WORKFLOW = """
name: notes
input_schema:
  type: object
  required: [text]
  properties: {text: {type: string, minLength: 1}}
steps:
  - {name: keep, pool: cpu, uses: noop}
"""


class Upper:
    """A masking that upper-cases ``text`` and keeps the original."""

    def apply(self, data: Any) -> tuple[Any, bytes | None]:
        """The masked data and the original text."""
        return {**data, "text": data["text"].upper()}, orjson.dumps({"text": data["text"]})


async def _app(make_app: MakeApp) -> SluiceApp:
    settings = load_settings(make_app(CONFIG, {"notes.yaml": WORKFLOW}))
    # No pools run here: accepted events stay in the queue, so its limit can be reached.
    app = SluiceApp.from_settings(settings, run_pools=())
    await app.start()
    return app


class TestTake:
    """One call admits, checks, creates and durably accepts an event."""

    async def test_valid_input_is_masked_and_stored(self, make_app: MakeApp) -> None:
        """A valid event is written as the masking left it, with its receipt."""
        app = await _app(make_app)
        try:
            wf = app.registry.get("notes")
            acceptor = app.runtime.acceptor
            receipt = await acceptor.take(Submission(wf, "acme", {"text": "hi"}, masking=Upper()))
            record = await app.store.get_event(receipt.event_id)
            assert receipt.status == "accepted"
            assert not receipt.duplicate
            assert record.tenant == "acme"
            assert orjson.loads(record.input) == {"text": "HI"}
        finally:
            await app.stop()

    async def test_invalid_input_is_rejected_with_every_problem(self, make_app: MakeApp) -> None:
        """Schema problems and the caller's own come back as InputRejectedError; nothing is
        written."""
        app = await _app(make_app)
        try:
            wf = app.registry.get("notes")
            acceptor = app.runtime.acceptor
            with pytest.raises(InputRejectedError) as schema:
                await acceptor.take(Submission(wf, "acme", {"text": ""}))
            assert schema.value.problems
            assert "$.text" in schema.value.problems[0]
            with pytest.raises(InputRejectedError) as mapped:
                await acceptor.take(Submission(wf, "acme", None, problems=["$.ticket: missing"]))
            assert mapped.value.problems == ["$.ticket: missing"]
            assert await app.store.queue_depths() == {}
        finally:
            await app.stop()

    async def test_admission_is_judged_before_the_input(self, make_app: MakeApp) -> None:
        """With the first pool's queue full, even invalid input is refused with 503's error,
        not rejected: the caller retries rather than quarantining."""
        app = await _app(make_app)
        try:
            wf = app.registry.get("notes")
            acceptor = app.runtime.acceptor
            for i in range(2):
                await acceptor.take(Submission(wf, "acme", {"text": f"n{i}"}))
            with pytest.raises(AdmissionError):
                await acceptor.take(Submission(wf, "acme", {"text": ""}))
            assert acceptor.queue_depth("cpu") == 2
        finally:
            await app.stop()

    async def test_a_claimed_key_returns_the_first_receipt(self, make_app: MakeApp) -> None:
        """The idempotency key is claimed in the event's transaction: a repeat is a duplicate
        of the first event, and no second one is written."""
        app = await _app(make_app)
        try:
            wf = app.registry.get("notes")
            acceptor = app.runtime.acceptor
            claim = IdempotencyClaim("acme", "api:notes:k1", "hash", 3600.0)
            first = await acceptor.take(Submission(wf, "acme", {"text": "a"}, claim))
            again = await acceptor.take(Submission(wf, "acme", {"text": "a"}, claim))
            assert again.duplicate
            assert again.event_id == first.event_id
            assert acceptor.queue_depth("cpu") == 1
        finally:
            await app.stop()
