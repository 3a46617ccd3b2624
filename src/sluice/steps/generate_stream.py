"""The text of ``generate`` steps as it is produced, for callers waiting on their run.

A caller of ``POST /v1/workflows/{name}/runs?wait=S`` with ``Accept: text/event-stream``
subscribes to its event here (:meth:`TextStreams.subscribe`); while someone listens, the
event's ``generate`` steps ask their model for a streamed answer and publish each text delta
(:class:`StepTextSink`, through :data:`sluice.models.chat_model.TEXT_SINK`). Nothing here is
durable or needed by the run: a step publishes without waiting, and a caller who leaves only
closes its subscription.

Bounded everywhere: at most ``max_subscribers`` subscriptions (past that a caller gets no text,
only the result), each holding at most ``max_chars`` characters not yet sent; deltas of one call
waiting together are joined into one piece, so a slow reader gets fewer, larger pieces, and
one that falls ``max_chars`` behind gets no more text (``lagged``; the run's result still has
all of it). A subscription whose reader never came is dropped at its expiry.

In-process only: with the worker pools in other processes, the run's result comes alone.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

#: Subscriptions at once, and characters each may hold unsent.
DEFAULT_MAX_SUBSCRIBERS = 1024
DEFAULT_MAX_CHARS = 64 * 1024


class Subscription:
    """One waiting caller's text events: ``{"step", "call", "text"}`` in order."""

    def __init__(self, streams: TextStreams, event_id: str, max_chars: int, expires: float):
        self.event_id = event_id
        self.expires = expires
        #: True once text was dropped because the reader fell ``max_chars`` behind.
        self.lagged = False
        self._streams = streams
        self._max_chars = max_chars
        self._pending: deque[dict[str, Any]] = deque()
        self._chars = 0
        self._ready = asyncio.Event()

    def put(self, step: str, call: int, text: str) -> None:
        """Queue a delta (joined to the last one when it is of the same call)."""
        if self.lagged or not text:
            return
        if self._chars + len(text) > self._max_chars:
            self.lagged = True  # what is queued is still sent; nothing more
            return
        last = self._pending[-1] if self._pending else None
        if last is not None and last["step"] == step and last["call"] == call:
            last["text"] += text
        else:
            self._pending.append({"step": step, "call": call, "text": text})
        self._chars += len(text)
        self._ready.set()

    async def next(self) -> dict[str, Any]:
        """The next text event, waiting for it."""
        while not self._pending:
            self._ready.clear()
            await self._ready.wait()
        event = self._pending.popleft()
        self._chars -= len(event["text"])
        return event

    def drain(self) -> list[dict[str, Any]]:
        """Every text event queued, without waiting."""
        events, self._pending, self._chars = list(self._pending), deque(), 0
        return events

    def close(self) -> None:
        """Stop receiving; what is queued is dropped."""
        self._streams.remove(self)
        self._pending.clear()
        self._chars = 0


class TextStreams:
    """Subscriptions to events' generated text, in this process."""

    def __init__(
        self, max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS, max_chars: int = DEFAULT_MAX_CHARS
    ) -> None:
        self.max_subscribers = max_subscribers
        self.max_chars = max_chars
        self._subscribers: dict[str, list[Subscription]] = {}
        self._count = 0

    @property
    def open(self) -> int:
        """Subscriptions not closed yet."""
        return self._count

    def subscribe(self, event_id: str, ttl_s: float) -> Subscription | None:
        """A subscription to ``event_id``'s text for at most ``ttl_s`` seconds (dropped then
        if its reader never closed it); None when ``max_subscribers`` are open."""
        now = time.monotonic()
        if self._count >= self.max_subscribers:
            self._expire(now)
            if self._count >= self.max_subscribers:
                return None
        subscription = Subscription(self, event_id, self.max_chars, now + ttl_s)
        self._subscribers.setdefault(event_id, []).append(subscription)
        self._count += 1
        return subscription

    def listening(self, event_id: str) -> bool:
        """Whether anyone waits for ``event_id``'s text."""
        return event_id in self._subscribers

    def publish(self, event_id: str, step: str, call: int, text: str) -> None:
        """Pass a text delta to ``event_id``'s subscribers; never waits."""
        for subscription in self._subscribers.get(event_id, ()):
            subscription.put(step, call, text)

    def remove(self, subscription: Subscription) -> None:
        """Forget ``subscription`` (closing it twice is harmless)."""
        listed = self._subscribers.get(subscription.event_id)
        if listed is None or subscription not in listed:
            return
        listed.remove(subscription)
        self._count -= 1
        if not listed:
            del self._subscribers[subscription.event_id]

    def _expire(self, now: float) -> None:
        expired = [s for subs in self._subscribers.values() for s in subs if s.expires < now]
        for subscription in expired:
            subscription.close()


class StepTextSink:
    """Publishes one step's generated text: each model call (a repair, a retried attempt) is
    a new ``call`` number, so a reader knows to start that step's text over."""

    def __init__(self, streams: TextStreams, event_id: str, step: str) -> None:
        self._streams = streams
        self._event_id = event_id
        self._step = step
        self.call = 0
        self.written = False

    def begin(self) -> None:
        """A model call (or attempt) starts."""
        self.call += 1
        self.written = False

    def write(self, text: str) -> None:
        """The next piece of the current call's text."""
        if text:
            self.written = True
            self._streams.publish(self._event_id, self._step, self.call, text)
