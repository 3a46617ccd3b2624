"""Circuit breakers: stop calling a downstream that keeps failing, and probe it back to health.

::

    closed ──(N consecutive failures, or error rate over the window)──► open
    open ──(open_s elapsed)──► half_open ──(probe_successes)──► closed
                                   └──────(a probe fails)─────────► open

A breaker guards one downstream, named like ``model:large``; a :class:`BreakerRegistry` holds
one per name. Refusals raise :class:`BreakerOpenError`, a retryable
:class:`~sluice.errors.StepError` whose ``retry_after`` is the time until the next probe.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from sluice.errors import ConfigError, StepError
from sluice.reliability.retry_budget import Clock, SlidingCounts

log = logging.getLogger("sluice.reliability")


class BreakerState(StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOpenError(StepError):
    """A call was refused because the downstream's breaker is open (or its probes are out).

    Retryable: ``retry_after`` (seconds) is when the breaker will let a probe through.
    """

    def __init__(self, name: str, retry_after: float, reason: str) -> None:
        super().__init__(
            f"circuit breaker for {name!r} is open ({reason}); failing fast, next probe in"
            f" {retry_after:.1f} s",
            retryable=True,
            retry_after=retry_after,
        )
        self.name = name


def counts_as_failure(exc: Exception) -> bool:
    """Default failure test: a non-retryable StepError (a bad request) says nothing of health."""
    return exc.retryable if isinstance(exc, StepError) else True


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a breaker opens, how long it stays open and how it probes.

    It opens after ``failure_threshold`` consecutive failures, or when at least
    ``min_requests`` calls in the last ``window_s`` failed at ``error_rate`` or more. After
    ``open_s`` it lets ``half_open_probes`` calls through and closes once ``probe_successes``
    of them succeed.
    """

    failure_threshold: int = 5
    error_rate: float = 0.5
    window_s: float = 30.0
    min_requests: int = 20
    open_s: float = 10.0
    half_open_probes: int = 1
    probe_successes: int = 1

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.min_requests < 1 or self.half_open_probes < 1:
            raise ConfigError("failure_threshold, min_requests and half_open_probes must be >= 1")
        if not 0.0 < self.error_rate <= 1.0 or self.window_s <= 0 or self.open_s <= 0:
            raise ConfigError("error_rate must be in (0, 1]; window_s and open_s must be > 0")
        if not 1 <= self.probe_successes <= self.half_open_probes:
            raise ConfigError("probe_successes must be within 1..half_open_probes")


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of state; ``at`` is on the breaker's clock."""

    source: BreakerState
    target: BreakerState
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A breaker's state and counters, for status pages and metrics."""

    name: str
    state: BreakerState
    retry_after: float
    consecutive_failures: int
    window_requests: int
    window_failures: int
    counts: Mapping[str, int]
    transitions: Mapping[str, int]
    last_transition: Transition | None
    seconds_since_transition: float | None


class CircuitBreaker:
    """The breaker of one downstream. Not thread-safe: one event loop owns it."""

    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        *,
        clock: Clock = time.monotonic,
        is_failure: Callable[[Exception], bool] = counts_as_failure,
    ) -> None:
        self.name = name
        self.settings = settings or BreakerSettings()
        self._clock = clock
        self._is_failure = is_failure
        self._state = BreakerState.CLOSED
        # Outcomes of calls admitted under an earlier state are stale: the epoch tells them apart.
        self._epoch = 0
        self._opened_at = 0.0
        self._open_reason = ""
        self._consecutive = 0
        self._window = SlidingCounts(self.settings.window_s, fields=2)
        self._probes_out = self._probe_wins = 0
        self._counts = dict.fromkeys(("allowed", "rejected", "successes", "failures"), 0)
        self._transitions: dict[str, int] = {}
        self._last: Transition | None = None

    @property
    def state(self) -> BreakerState:
        """The current state, moving open to half-open when ``open_s`` has passed."""
        if self._state is BreakerState.OPEN and self._retry_after(self._clock()) <= 0:
            self._move(BreakerState.HALF_OPEN, f"open for {self.settings.open_s:g} s")
        return self._state

    def allow(self) -> bool:
        """Whether a call may go through now; pair every True with one :meth:`record`."""
        return self._admit() is not None

    def record(self, success: bool) -> None:
        """Record the outcome of a call that :meth:`allow` let through.

        The outcome counts for the state the breaker is in now; :meth:`guard` also ignores
        late outcomes of calls admitted under an earlier state.
        """
        self._settle(self._epoch, success)

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run the body as one guarded call: refused with :class:`BreakerOpenError` when open.

        An exception counts as a failure when ``is_failure`` says so; a cancelled call frees
        its probe slot without counting either way.
        """
        epoch = self._admit()
        if epoch is None:
            raise self.open_error()
        try:
            yield
        except Exception as exc:
            self._settle(epoch, not self._is_failure(exc))
            raise
        except BaseException:
            # Cancelled by the caller (its budget, a shutdown): no verdict on the downstream.
            if epoch == self._epoch and self._state is BreakerState.HALF_OPEN:
                self._probes_out -= 1
            raise
        self._settle(epoch, True)

    def open_error(self) -> BreakerOpenError:
        """The error a refused call raises, with the time until the next probe."""
        now = self._clock()
        if self._state is BreakerState.OPEN:
            return BreakerOpenError(self.name, self._retry_after(now), self._open_reason)
        # Probes are out: their verdict comes within a call's time, at worst another open_s.
        return BreakerOpenError(self.name, self.settings.open_s, "probes in flight")

    def snapshot(self) -> BreakerSnapshot:
        """The breaker's state, counters and last transition."""
        state, now = self.state, self._clock()
        requests, failures = self._window.totals(now)
        return BreakerSnapshot(
            name=self.name,
            state=state,
            retry_after=self._retry_after(now) if state is BreakerState.OPEN else 0.0,
            consecutive_failures=self._consecutive,
            window_requests=requests,
            window_failures=failures,
            counts=MappingProxyType(dict(self._counts)),
            transitions=MappingProxyType(dict(self._transitions)),
            last_transition=self._last,
            seconds_since_transition=None if self._last is None else now - self._last.at,
        )

    def _retry_after(self, now: float) -> float:
        return max(0.0, self._opened_at + self.settings.open_s - now)

    def _admit(self) -> int | None:
        state = self.state
        if state is BreakerState.HALF_OPEN:
            if self._probes_out + self._probe_wins >= self.settings.half_open_probes:
                self._counts["rejected"] += 1
                return None
            self._probes_out += 1
        elif state is BreakerState.OPEN:
            self._counts["rejected"] += 1
            return None
        self._counts["allowed"] += 1
        return self._epoch

    def _settle(self, epoch: int, success: bool) -> None:
        self._counts["successes" if success else "failures"] += 1
        if epoch != self._epoch:
            return
        s = self.settings
        if self._state is BreakerState.HALF_OPEN:
            self._probes_out = max(0, self._probes_out - 1)
            if not success:
                self._move(BreakerState.OPEN, "a probe failed")
            else:
                self._probe_wins += 1
                if self._probe_wins >= s.probe_successes:
                    self._move(BreakerState.CLOSED, f"{self._probe_wins} probes succeeded")
            return
        if self._state is BreakerState.OPEN:
            return
        now = self._clock()
        self._window.add(now, 1, 0 if success else 1)
        self._consecutive = 0 if success else self._consecutive + 1
        requests, failures = self._window.totals(now)
        if self._consecutive >= s.failure_threshold:
            self._move(BreakerState.OPEN, f"{self._consecutive} consecutive failures")
        elif requests >= s.min_requests and failures >= s.error_rate * requests:
            self._move(
                BreakerState.OPEN, f"{failures} of {requests} calls failed in {s.window_s:g} s"
            )

    def _move(self, target: BreakerState, reason: str) -> None:
        source, self._state = self._state, target
        self._epoch += 1
        self._probes_out = self._probe_wins = self._consecutive = 0
        now = self._clock()
        if target is BreakerState.OPEN:
            self._opened_at, self._open_reason = now, reason
        elif target is BreakerState.CLOSED:
            self._window.clear()
        key = f"{source}->{target}"
        self._transitions[key] = self._transitions.get(key, 0) + 1
        self._last = Transition(source, target, reason, now)
        level = logging.WARNING if target is BreakerState.OPEN else logging.INFO
        log.log(level, "breaker %s: %s -> %s (%s)", self.name, source, target, reason)


class BreakerRegistry:
    """One breaker per downstream name, at most ``max_names`` of them.

    Past the bound the least recently used closed breaker is dropped (a fresh one behaves the
    same); when every breaker is open or probing, a new name is refused with a StepError.
    ``overrides`` gives some downstreams their own settings.
    """

    def __init__(
        self,
        settings: BreakerSettings | None = None,
        *,
        overrides: Mapping[str, BreakerSettings] | None = None,
        max_names: int = 256,
        clock: Clock = time.monotonic,
    ) -> None:
        if max_names < 1:
            raise ConfigError("max_names must be >= 1")
        self.settings = settings or BreakerSettings()
        self._overrides = dict(overrides or {})
        self._max_names = max_names
        self._clock = clock
        self._breakers: OrderedDict[str, CircuitBreaker] = OrderedDict()

    def get(self, name: str) -> CircuitBreaker:
        """The breaker for ``name``, created on first use."""
        breaker = self._breakers.get(name)
        if breaker is not None:
            self._breakers.move_to_end(name)
            return breaker
        if len(self._breakers) >= self._max_names:
            idle = next((k for k, b in self._breakers.items() if b.state == "closed"), None)
            if idle is None:
                raise StepError(
                    f"breaker registry full: all {self._max_names} downstreams are open or"
                    f" probing; refusing a breaker for {name!r}",
                    retry_after=self.settings.open_s,
                )
            del self._breakers[idle]
        settings = self._overrides.get(name, self.settings)
        breaker = self._breakers[name] = CircuitBreaker(name, settings, clock=self._clock)
        return breaker

    def __len__(self) -> int:
        """How many downstreams have a breaker."""
        return len(self._breakers)

    def snapshot(self) -> list[BreakerSnapshot]:
        """Every breaker's snapshot, by name."""
        return [self._breakers[k].snapshot() for k in sorted(self._breakers)]
