"""Micro-batching: concurrent single requests to a slow local model answered by one batch.

A neural encoder costs several milliseconds per call but far less per text in a batch
(MEASURED.md: MiniLM ~10 ms for one sentence, ~350 sentences/s in batches of 64). Requests
that arrive within ``max_wait_ms`` of each other, up to ``max_batch``, are encoded together in
a worker thread; a lone request waits at most ``max_wait_ms`` more than it would alone.

One batch runs at a time: requests that arrive meanwhile form the next batch, which starts
as soon as the running one ends. Batches therefore grow with load instead of the encoder
running many small batches side by side and fighting over the cores.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sluice.models.base import ModelRequest, ModelResult
from sluice.models.local import LocalClassifier


class MicroBatcher:
    """A :class:`~sluice.models.base.Model` that batches calls to a :class:`LocalClassifier`."""

    def __init__(self, model: LocalClassifier, max_batch: int = 32, max_wait_ms: float = 2.0):
        self.model = model
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self._pending: list[tuple[ModelRequest, asyncio.Future[ModelResult]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None
        self.batches = 0
        self.requests = 0

    @property
    def name(self) -> str:
        """The wrapped model's name."""
        return self.model.name

    @property
    def version(self) -> str:
        """The wrapped model's version."""
        return self.model.version

    @property
    def price_per_call(self) -> float:
        """The wrapped model's price: batching does not change what a call costs."""
        return self.model.price_per_call

    def __getattr__(self, name: str) -> Any:
        # Everything else (predict_batch for tuning, warm_up, labels) is the model's own.
        return getattr(self.model, name)

    async def predict(self, request: ModelRequest) -> ModelResult:
        """Queue ``request`` for the next batch and wait for its answer."""
        if request.labels is not None:  # a restricted label set is answered on its own
            return await self.model.predict(request)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ModelResult] = loop.create_future()
        self._pending.append((request, future))
        if self._running is None:
            if len(self._pending) >= self.max_batch:
                self._flush()
            elif self._timer is None:
                self._timer = loop.call_later(self.max_wait_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._running is not None or not self._pending:
            return
        batch = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        self._running = asyncio.create_task(self._run(batch))
        self._running.add_done_callback(self._next)

    def _next(self, _: asyncio.Task[None]) -> None:
        # What arrived while the batch ran goes next, without waiting again.
        self._running = None
        self._flush()

    async def _run(self, batch: list[tuple[ModelRequest, asyncio.Future[ModelResult]]]) -> None:
        started = time.perf_counter()
        texts = [request.text for request, _ in batch]
        try:
            predictions = await asyncio.to_thread(self.model.predict_batch, texts)
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        self.requests += len(batch)
        latency_ms = (time.perf_counter() - started) * 1000
        for (_, future), prediction in zip(batch, predictions, strict=True):
            if not future.done():
                future.set_result(
                    ModelResult(
                        model=self.model.name,
                        output={"label": prediction.label,
                                "top": [list(pair) for pair in prediction.top]},
                        label=prediction.label,
                        confidence=prediction.confidence,
                        cost=self.model.price_per_call,
                        latency_ms=latency_ms,
                    )
                )  # fmt: skip
