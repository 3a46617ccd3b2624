"""A model behind a circuit breaker and a retry budget, with an optional fallback.

:class:`GuardedModel` is itself a :class:`~sluice.models.base.Model`, so a cascade tier, a
cache or a step uses it unchanged. Per call:

1. the breaker admits the call, or it fails fast: :class:`BreakerOpenError`, or at once the
   ``fallback`` model's answer (e.g. the cascade's small model), marked with the reason in
   ``ModelResult.fallback``; a caller that already holds the fallback's answer passes it as
   ``answered`` and gets it back, marked, without a second call;
2. a retryable :class:`~sluice.errors.StepError` is retried while attempts remain, the
   downstream's retry budget allows, and the wait (full jitter, at least the error's
   ``retry_after``) fits before the caller's deadline;
3. anything else is raised as it came.

The deadline is on the ``time.time()`` clock, like ``StepContext.deadline``. It is passed to
:meth:`GuardedModel.predict`, or set once for every call in a block with
:func:`call_deadline`, so it reaches guarded models nested inside a cascade.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace

from sluice.errors import ConfigError, StepError
from sluice.models.base import Model, ModelRequest, ModelResult
from sluice.reliability.breaker import BreakerOpenError, CircuitBreaker
from sluice.reliability.retry_budget import Clock, RetryBudget, retry_delay

log = logging.getLogger("sluice.reliability")

Sleep = Callable[[float], Awaitable[None]]
"""Waits the given seconds; injected so tests need not wait for real."""

# Call-scoped, not wiring: it carries one caller's deadline through models it does not own.
_deadline: ContextVar[float | None] = ContextVar("sluice_call_deadline", default=None)


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


@contextmanager
def call_deadline(deadline: float) -> Iterator[None]:
    """Guarded calls in this block retry only until ``deadline`` (``time.time()`` clock).

    Nested blocks keep the earlier deadline: an inner caller cannot extend an outer budget.
    """
    token = _deadline.set(_earliest(deadline, _deadline.get()))
    try:
        yield
    finally:
        _deadline.reset(token)


def current_deadline() -> float | None:
    """The deadline set by the innermost :func:`call_deadline`, if any."""
    return _deadline.get()


class GuardedModel:
    """``model`` behind ``breaker`` and ``budget``; answers from ``fallback`` while open.

    ``attempts`` bounds the calls one request makes (the first included). Retries count
    against ``budget`` under ``budget_name`` (the breaker's name by default). ``max_in_flight``
    is a bulkhead: with that many calls already waiting on the model, a request takes the
    fallback at once (or fails fast with a retryable error when there is none) instead of
    adding to a queue the provider would answer with 429s. ``name`` and
    ``version`` are the wrapped model's, so caches and prices see no difference; an answer
    from the fallback carries the fallback's name in ``ModelResult.model`` and the reason in
    ``ModelResult.fallback``; ``fallbacks`` counts them by reason.
    """

    def __init__(
        self,
        model: Model,
        breaker: CircuitBreaker,
        budget: RetryBudget,
        fallback: Model | None = None,
        attempts: int = 3,
        *,
        budget_name: str | None = None,
        base_s: float = 0.1,
        cap_s: float = 5.0,
        min_attempt_s: float = 0.0,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        if attempts < 1:
            raise ConfigError("attempts must be >= 1")
        if max_in_flight is not None and max_in_flight < 1:
            raise ConfigError("max_in_flight must be >= 1")
        self.model = model
        self.breaker = breaker
        self.budget = budget
        self.fallback = fallback
        self.attempts = attempts
        self.budget_name = budget_name or breaker.name
        self._base_s = base_s
        self._cap_s = cap_s
        self._min_attempt_s = min_attempt_s
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.fallbacks: dict[str, int] = {"breaker": 0, "bulkhead": 0}

    @property
    def bulkhead_fallbacks(self) -> int:
        """Calls that took the fallback because ``max_in_flight`` calls were running."""
        return self.fallbacks["bulkhead"]

    @property
    def name(self) -> str:
        """The wrapped model's name."""
        return self.model.name

    @property
    def version(self) -> str:
        """The wrapped model's version."""
        return self.model.version

    async def predict(
        self,
        request: ModelRequest,
        *,
        deadline: float | None = None,
        answered: ModelResult | None = None,
    ) -> ModelResult:
        """Answer ``request`` through the breaker, retrying within budget and deadline.

        ``deadline`` (``time.time()`` clock) tightens any set by :func:`call_deadline`.
        ``answered`` is the fallback model's answer when the caller already has it (a cascade's
        first tier): falling back then returns it, marked, instead of asking again.
        """
        deadline = _earliest(deadline, _deadline.get())
        if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
            if self.fallback is not None:
                return await self._fall_back(self.fallback, request, "bulkhead", answered)
            self.fallbacks["bulkhead"] += 1  # counted as a refusal of the bulkhead all the same
            raise StepError(
                f"{self.breaker.name}: {self.max_in_flight} calls already in flight (its"
                " max_in_flight)",
                retryable=True,
                retry_after=0.1,
            )
        self.in_flight += 1
        try:
            return await self._attempts(request, deadline, answered)
        finally:
            self.in_flight -= 1

    async def _fall_back(
        self, fallback: Model, request: ModelRequest, reason: str, answered: ModelResult | None
    ) -> ModelResult:
        """The fallback's answer, marked with why: the caller's copy when it has one."""
        self.fallbacks[reason] += 1
        if answered is None or answered.model != fallback.name:
            answered = await fallback.predict(request)
        return replace(answered, fallback=reason)

    async def _attempts(
        self, request: ModelRequest, deadline: float | None, answered: ModelResult | None
    ) -> ModelResult:
        last: StepError | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                async with self.breaker.guard():
                    if attempt == 1:
                        # Retries were counted when granted, so concurrent callers share them.
                        self.budget.record_attempt(self.budget_name, is_retry=False)
                    return await self.model.predict(request)
            except BreakerOpenError as exc:
                if exc.name == self.breaker.name:
                    if self.fallback is None:
                        raise exc from last
                    log.debug("breaker %s open: answering from %s", exc.name, self.fallback.name)
                    return await self._fall_back(self.fallback, request, "breaker", answered)
                failure: StepError = exc  # an inner downstream's breaker: a failure like any
            except StepError as exc:
                failure = exc
            last = failure
            delay = self._delay(attempt, failure, deadline)
            if delay is None:
                raise failure
            log.info(
                "retrying %s in %.3f s (attempt %d of %d): %s",
                self.breaker.name, delay, attempt + 1, self.attempts, last,
            )  # fmt: skip
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def _delay(self, attempt: int, exc: StepError, deadline: float | None) -> float | None:
        """The wait before the next attempt, or None when there must be no next attempt."""
        if not exc.retryable or attempt >= self.attempts:
            return None
        remaining = float("inf") if deadline is None else deadline - self._clock()
        delay = retry_delay(
            attempt,
            remaining_s=remaining,
            retry_after=exc.retry_after,
            base_s=self._base_s,
            cap_s=self._cap_s,
            min_attempt_s=self._min_attempt_s,
            rng=self._rng,
        )
        if delay is None:
            return None
        if not self.budget.can_retry(self.budget_name):
            log.warning("retry budget of %s used up: not retrying %s", self.budget_name, exc)
            return None
        self.budget.record_attempt(self.budget_name, is_retry=True)
        return delay
