"""SLO guards: when a workflow's p95 latency or error rate slips, act on it, then recover.

::

    normal ──(p95 > p95_ms or error rate > error_rate)──► degraded | shedding | closed
       ▲                                                       (the workflow's policy)
       └──(min_events within margin x SLO, held for recover_s)────────┘

Recovery needs evidence: a window with fewer than ``min_events`` finished events says nothing,
so it neither starts nor continues the recovery clock (an empty window is silence, not health).
A guard that admits nothing (``fail_closed``) would then never learn anything, so while its
window holds no confirmed slip it lets probes through, half-open style: one admission every
``window_s / (2 x min_events)`` seconds, enough to fill the window with twice the evidence a
verdict needs and no more. Slow probes confirm the slip and stop the probing until they leave
the window; fast ones let the guard recover.

Each finished event is fed to :meth:`SloGuard.record`. The window is a ring of per-second
slots, each with a sparse latency histogram (log-spaced bins, 15% wide), so memory is bounded
by ``window_s`` and the bin count, never by traffic. Policies: ``degrade`` (admit all; callers
skip escalation to the costly model while :attr:`SloGuard.degraded`), ``shed`` (admit only
``shed_admit`` of new work) and ``fail_closed`` (admit only probes). Refusals raise
:class:`~sluice.errors.AdmissionError`.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from sluice.errors import AdmissionError, ConfigError
from sluice.reliability.retry_budget import Clock

log = logging.getLogger("sluice.reliability")

# Upper bounds (ms) of the latency bins: 1 ms to ~16 min, each 15% above the last.
_EDGES = tuple(1.15**i for i in range(100))


class SloPolicy(StrEnum):
    """What a guard does while its SLO is slipping."""

    DEGRADE = "degrade"
    SHED = "shed"
    FAIL_CLOSED = "fail_closed"


class GuardState(StrEnum):
    """Where a guard stands."""

    NORMAL = "normal"
    DEGRADED = "degraded"
    SHEDDING = "shedding"
    CLOSED = "closed"


_ACTING = {
    SloPolicy.DEGRADE: GuardState.DEGRADED,
    SloPolicy.SHED: GuardState.SHEDDING,
    SloPolicy.FAIL_CLOSED: GuardState.CLOSED,
}


@dataclass(frozen=True, slots=True)
class SloSettings:
    """A workflow's SLO (``p95_ms``, ``error_rate`` over ``window_s``) and how to keep it.

    Nothing is judged with fewer than ``min_events`` in the window. The guard returns to
    normal once the window has held at least ``min_events`` events with p95 and error rate
    within ``margin`` times their targets for ``recover_s``; fewer events are no evidence.
    """

    p95_ms: float
    error_rate: float
    window_s: float = 60.0
    policy: SloPolicy = SloPolicy.DEGRADE
    recover_s: float = 30.0
    margin: float = 0.8
    min_events: int = 20
    shed_admit: float = 0.5

    def __post_init__(self) -> None:
        problems = []
        if self.p95_ms <= 0 or not 0.0 <= self.error_rate < 1.0:
            problems.append("p95_ms must be > 0 and error_rate within [0, 1)")
        if not 1.0 <= self.window_s <= 3600.0 or self.recover_s < 0:
            problems.append("window_s must be within 1..3600 and recover_s >= 0")
        if not 0.0 < self.margin <= 1.0 or self.min_events < 1:
            problems.append("margin must be within (0, 1] and min_events >= 1")
        if not 0.0 < self.shed_admit < 1.0:
            problems.append("shed_admit must be within (0, 1)")
        if problems:
            raise ConfigError("invalid SLO settings", problems)

    @classmethod
    def from_mapping(cls, workflow: str, slo: Mapping[str, Any]) -> SloSettings:
        """Settings from a workflow file's ``slo:`` section; every problem is reported at once."""
        known = {f.name for f in fields(cls)}
        problems = [f"slo.{k}: unknown setting" for k in slo if k not in known]
        problems += [f"slo.{k}: required" for k in ("p95_ms", "error_rate") if k not in slo]
        if slo.get("policy", "degrade") not in {p.value for p in SloPolicy}:
            problems.append(f"slo.policy: {slo['policy']!r} is not degrade, shed or fail_closed")
        if problems:
            raise ConfigError(f"workflow {workflow!r}: invalid slo", problems)
        try:
            values = {k: v for k, v in slo.items() if k != "policy"}
            return cls(**values, policy=SloPolicy(slo.get("policy", "degrade")))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"workflow {workflow!r}: invalid slo", [f"slo: {exc}"]) from None
        except ConfigError as exc:
            raise ConfigError(f"workflow {workflow!r}: invalid slo", exc.problems) from None


@dataclass(frozen=True, slots=True)
class SloWindow:
    """What the window holds now: events, errors, p95 latency (ms) and error rate."""

    events: int
    errors: int
    p95_ms: float
    error_rate: float


@dataclass(frozen=True, slots=True)
class GuardTransition:
    """One change of state; ``at`` is on the guard's clock."""

    source: GuardState
    target: GuardState
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class SloSnapshot:
    """A guard's state, window and counters, for ``/v1/status`` and metrics."""

    workflow: str
    state: GuardState
    policy: SloPolicy
    window: SloWindow
    slipped: str | None
    retry_after: float
    counts: Mapping[str, int]
    transitions: Mapping[str, int]
    last_transition: GuardTransition | None


@dataclass(slots=True)
class _Second:
    """One slot of the ring: one second's samples."""

    events: int = 0
    errors: int = 0
    bins: dict[int, int] = field(default_factory=dict)


class SloGuard:
    """The SLO guard of one workflow. Not thread-safe: one event loop owns it."""

    def __init__(self, workflow: str, settings: SloSettings, *, clock: Clock = time.monotonic):
        self.workflow = workflow
        self.settings = settings
        self._clock = clock
        self._ring = [_Second() for _ in range(math.ceil(settings.window_s))]
        self._head = -1  # the newest second the ring has been advanced to
        # Running sums over the ring, so a judgement costs one pass over the bins.
        self._events = self._errors = 0
        self._bins = [0] * (len(_EDGES) + 1)
        self._state = GuardState.NORMAL
        self._slipped: str | None = None
        self._healthy_since: float | None = None
        self._credit = 0.0
        self._last_probe = -math.inf
        self._counts = dict.fromkeys(
            ("events", "errors", "admitted", "shed", "refused", "probes"), 0
        )
        self._transitions: dict[str, int] = {}
        self._last: GuardTransition | None = None

    @property
    def state(self) -> GuardState:
        """The current state, after judging the window as of now."""
        self._judge(self._clock())
        return self._state

    @property
    def degraded(self) -> bool:
        """Whether callers should skip escalation to costly models now (``degrade`` policy)."""
        return self.state is GuardState.DEGRADED

    def record(self, latency_ms: float, ok: bool) -> None:
        """Count one finished event: its accept-to-end latency and whether it succeeded."""
        now = self._clock()
        self._advance(math.floor(now))
        slot = self._ring[self._head % len(self._ring)]
        b = bisect.bisect_left(_EDGES, latency_ms)
        slot.bins[b] = slot.bins.get(b, 0) + 1
        slot.events += 1
        self._events += 1
        self._bins[b] += 1
        self._counts["events"] += 1
        if not ok:
            slot.errors += 1
            self._errors += 1
            self._counts["errors"] += 1
        self._judge(now)

    def admit(self) -> bool:
        """Whether to take one more piece of new work now; counted either way."""
        state = self.state
        if state is GuardState.SHEDDING:
            # A credit that grows by shed_admit per request admits exactly that share, evenly.
            self._credit += self.settings.shed_admit
            if self._credit >= 1.0:
                self._credit -= 1.0
            else:
                self._counts["shed"] += 1
                return False
        elif state is GuardState.CLOSED:
            now = self._clock()
            if not self.probing or now - self._last_probe < self.probe_interval_s:
                self._counts["refused"] += 1
                return False
            self._last_probe = now
            self._counts["probes"] += 1
        self._counts["admitted"] += 1
        return True

    def check(self) -> None:
        """Admit one piece of new work, or raise :class:`AdmissionError` with ``retry_after``."""
        if not self.admit():
            raise self.refusal()

    def refusal(self) -> AdmissionError:
        """The error a refused request raises: the workflow, the slipped figure, when to return."""
        wait = max(1.0, self._retry_after(self._clock()))
        verb = "shedding load" if self._state is GuardState.SHEDDING else "refusing new work"
        return AdmissionError(
            f"workflow {self.workflow!r} is {verb}: SLO slipped ({self._slipped});"
            f" retry in {wait:.0f} s",
            retry_after=wait,
        )

    def snapshot(self) -> SloSnapshot:
        """The guard's state, window, counters and last transition."""
        state, now = self.state, self._clock()
        return SloSnapshot(
            workflow=self.workflow,
            state=state,
            policy=self.settings.policy,
            window=self._window(),
            slipped=self._slipped,
            retry_after=self._retry_after(now),
            counts=MappingProxyType(dict(self._counts)),
            transitions=MappingProxyType(dict(self._transitions)),
            last_transition=self._last,
        )

    def _advance(self, second: int) -> None:
        """Move the ring to ``second``, dropping the slots that left the window."""
        if second <= self._head:
            return
        size = len(self._ring)
        for s in range(max(self._head + 1, second - size + 1), second + 1):
            slot = self._ring[s % size]
            self._events -= slot.events
            self._errors -= slot.errors
            for b, n in slot.bins.items():
                self._bins[b] -= n
            slot.events = slot.errors = 0
            slot.bins.clear()
        self._head = second

    def _window(self) -> SloWindow:
        if self._events == 0:
            return SloWindow(0, 0, 0.0, 0.0)
        rank = math.ceil(0.95 * self._events)
        seen = 0
        for b, n in enumerate(self._bins):
            if n and seen + n >= rank:
                # Interpolate inside the bin: the sample's place among the bin's n.
                low = _EDGES[b - 1] if b > 0 else 0.0
                high = _EDGES[min(b, len(_EDGES) - 1)]
                p95 = low + (high - low) * (rank - seen) / n
                break
            seen += n
        return SloWindow(self._events, self._errors, p95, self._errors / self._events)

    def _slip(self, window: SloWindow, factor: float) -> str | None:
        """Which figure is past ``factor`` times its target, or None."""
        s = self.settings
        if window.events < s.min_events:
            return None
        if window.p95_ms > s.p95_ms * factor:
            return f"p95 {window.p95_ms:.0f} ms > {s.p95_ms * factor:g} ms"
        if window.error_rate > s.error_rate * factor:
            return f"error rate {window.error_rate:.1%} > {s.error_rate * factor:.1%}"
        return None

    @property
    def probe_interval_s(self) -> float:
        """Seconds between probes of a closed guard: 2 x ``min_events`` per window."""
        return self.settings.window_s / (2 * self.settings.min_events)

    @property
    def probing(self) -> bool:
        """Whether a closed guard lets probes through now: closed, no slip confirmed."""
        return self.state is GuardState.CLOSED and self._slip(
            self._window(), self.settings.margin) is None  # fmt: skip

    def _judge(self, now: float) -> None:
        self._advance(math.floor(now))
        window = self._window()
        if self._state is GuardState.NORMAL:
            slipped = self._slip(window, 1.0)
            if slipped is not None:
                self._slipped, self._healthy_since = slipped, None
                self._move(_ACTING[self.settings.policy], f"SLO slipped: {slipped}", now)
            return
        still = self._slip(window, self.settings.margin)
        if still is not None or window.events < self.settings.min_events:
            # A slip, or too few events to tell: either way no evidence of health.
            self._healthy_since = None
            return
        if self._healthy_since is None:
            self._healthy_since = now
        if now - self._healthy_since >= self.settings.recover_s:
            held = f"SLO held within {self.settings.margin:g}x for {self.settings.recover_s:g} s"
            self._slipped = self._healthy_since = None
            self._move(GuardState.NORMAL, held, now)

    def _retry_after(self, now: float) -> float:
        if self._state in (GuardState.NORMAL, GuardState.DEGRADED):
            return 0.0
        if self._healthy_since is None:
            return self.settings.recover_s  # a lower bound: the SLO has yet to hold at all
        return max(0.0, self._healthy_since + self.settings.recover_s - now)

    def _move(self, target: GuardState, reason: str, now: float) -> None:
        source, self._state = self._state, target
        self._credit = 0.0
        key = f"{source}->{target}"
        self._transitions[key] = self._transitions.get(key, 0) + 1
        self._last = GuardTransition(source, target, reason, now)
        level = logging.INFO if target is GuardState.NORMAL else logging.WARNING
        log.log(level, "slo guard %s: %s -> %s (%s)", self.workflow, source, target, reason)
