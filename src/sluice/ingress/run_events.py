"""A waited-on run as server-sent events: ``POST /v1/workflows/{name}/runs?wait=S`` with
``Accept: text/event-stream``.

The response is ``200 text/event-stream`` with, in order:

- ``event: accepted``: ``{"event_id", "status"}``, as soon as the event is durable;
- ``event: text``: ``{"step", "call", "text"}`` for each piece of text a ``generate`` step's
  model produces, as it comes (``call`` counts the step's model calls: a repair or a retried
  attempt starts the step's text over);
- ``event: result``: the run as ``GET /v1/runs/{event_id}`` shows it (``status`` ``done`` or
  ``dead`` with its result or error, or still ``accepted``/``running`` when ``wait`` ran out),
  plus ``"lagged": true`` when text was dropped for a reader that fell behind.

Refusals before the event is accepted (authentication, input, limits) are the usual
problem+json answers. The text is progress only: the result carries the complete value. A
caller who leaves closes its subscription and nothing else: the run goes on, durably.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from sluice.app import SluiceApp
from sluice.steps.generate_stream import Subscription, TextStreams
from sluice.store.base import EventRecord, Receipt

EVENT_STREAM = "text/event-stream"
# Kept past the wait for the response to start: a reader that never starts is dropped then.
_GRACE_S = 10.0


def wants_events(accept: str | None) -> bool:
    """Whether an ``Accept`` header asks for server-sent events."""
    if not accept:
        return False
    return any(part.split(";")[0].strip() == EVENT_STREAM for part in accept.split(","))


def event(name: str, data: Any) -> bytes:
    """One server-sent event."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def run_events(
    app: SluiceApp,
    receipt: Receipt,
    wait_s: float,
    view: Any,
    headers: dict[str, str],
) -> Response:
    """The event stream of the run ``receipt`` names, ended by its result within ``wait_s``
    (``view`` renders a record as ``GET /v1/runs/{id}`` does)."""
    streams: TextStreams | None = getattr(app.services.get("generate"), "streams", None)
    # Subscribed now, before the response starts, so text produced meanwhile is kept.
    subscription = (
        None if streams is None else streams.subscribe(receipt.event_id, wait_s + _GRACE_S)
    )
    body = _events(app, receipt, wait_s, view, subscription)
    sent = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers}
    return StreamingResponse(body, 200, sent, media_type=EVENT_STREAM)


async def _events(
    app: SluiceApp,
    receipt: Receipt,
    wait_s: float,
    view: Any,
    subscription: Subscription | None,
) -> AsyncIterator[bytes]:
    waiting: asyncio.Future[EventRecord] = asyncio.ensure_future(
        app.runtime.wait(receipt.event_id, wait_s)
    )
    try:
        yield event("accepted", {"event_id": receipt.event_id, "status": receipt.status})
        while subscription is not None and not waiting.done():
            text = asyncio.ensure_future(subscription.next())
            pending: set[asyncio.Future[Any]] = {text, waiting}
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if not text.done():
                text.cancel()
                break
            yield event("text", text.result())
        record = await waiting
        for piece in subscription.drain() if subscription is not None else ():
            yield event("text", piece)
        shown: dict[str, Any] = view(record)
        if subscription is not None and subscription.lagged:
            shown["lagged"] = True
        yield event("result", shown)
    finally:
        # The caller may have left: only the subscription and the wait end, never the run.
        waiting.cancel()
        if subscription is not None:
            subscription.close()
