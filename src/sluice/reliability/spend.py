"""Spend budgets: a cap on what a workflow or tenant spends per hour or per day.

Reserve before a costly call, then commit what it really cost (or release it)::

    reservation = await budgets.reserve("tenant:acme", 0.02)   # BudgetExhaustedError if over
    result = await call_the_large_model()
    await reservation.commit(result.cost)

A reservation is granted only if it keeps the window's total within the limit, so concurrent
callers cannot overshoot together. Windows are fixed and aligned to the clock (whole UTC hours
or days), so every process agrees on them. Amounts are counted in integer micro-units. Totals
live in a :class:`SpendLedger`: :class:`MemoryLedger` in this process, or :class:`KVLedger` on
the app's KV (shared through Redis).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sluice.errors import AdmissionError, ConfigError
from sluice.kv.base import KV
from sluice.reliability.retry_budget import Clock

MICROS = 1_000_000
_WINDOWS = {"hour": 3600, "day": 86400}
# Totals outlive their window a little, so a late commit still finds its counter.
_KEEP_S = 300.0


class OnExhausted(StrEnum):
    """What the caller should do when a budget is used up."""

    REFUSE = "refuse"
    DEGRADE = "degrade"


@dataclass(frozen=True, slots=True)
class SpendLimit:
    """At most ``amount`` (currency) per ``window`` (``hour`` or ``day``)."""

    amount: float
    window: str = "hour"
    on_exhausted: OnExhausted = OnExhausted.REFUSE

    def __post_init__(self) -> None:
        if self.amount <= 0 or self.window not in _WINDOWS:
            raise ConfigError(f"spend limit: amount must be > 0 and window hour or day ({self})")

    @property
    def window_s(self) -> int:
        """The window's length in seconds."""
        return _WINDOWS[self.window]


class BudgetExhaustedError(AdmissionError):
    """A reservation would take a spend budget past its limit.

    ``retry_after`` is the time to the window's end; ``degrade`` is True when the budget's
    policy is to carry on without the costly call rather than refuse the work.
    """

    def __init__(self, message: str, *, key: str, retry_after: float, degrade: bool) -> None:
        super().__init__(message, retry_after=retry_after)
        self.key = key
        self.degrade = degrade


class SpendLedger(Protocol):
    """Where window totals (micro-units) live. Each operation is atomic on its key."""

    async def add_within(self, key: str, micros: int, limit: int, ttl_s: float) -> bool:
        """Add ``micros`` to the total at ``key`` only if it stays within ``limit``."""
        ...

    async def add(self, key: str, micros: int, ttl_s: float) -> None:
        """Add ``micros`` (negative to give back) whatever the total."""
        ...

    async def total(self, key: str) -> int:
        """The total at ``key`` (0 when absent or expired)."""
        ...


class MemoryLedger:
    """:class:`SpendLedger` in this process: exact, and atomic because nothing awaits inside."""

    def __init__(self, *, clock: Clock = time.time, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._totals: dict[str, tuple[int, float]] = {}

    async def add_within(self, key: str, micros: int, limit: int, ttl_s: float) -> bool:
        """Add if the total stays within ``limit``."""
        if await self.total(key) + micros > limit:
            return False
        await self.add(key, micros, ttl_s)
        return True

    async def add(self, key: str, micros: int, ttl_s: float) -> None:
        """Add whatever the total; a new key lives ``ttl_s``."""
        entry = self._totals.get(key)
        if entry is None or entry[1] <= self._clock():
            entry = self._new_entry(ttl_s)
        self._totals[key] = (entry[0] + micros, entry[1])

    async def total(self, key: str) -> int:
        """The total at ``key``."""
        entry = self._totals.get(key)
        return 0 if entry is None or entry[1] <= self._clock() else entry[0]

    def _new_entry(self, ttl_s: float) -> tuple[int, float]:
        now = self._clock()
        if len(self._totals) >= self._max_keys:
            # New keys come once per budget and window: an occasional sweep is cheap.
            self._totals = {k: v for k, v in self._totals.items() if v[1] > now}
            if len(self._totals) >= self._max_keys:
                raise ConfigError(f"spend ledger full: {self._max_keys} live budget windows")
        return (0, now + ttl_s)


class KVLedger:
    """:class:`SpendLedger` on a :class:`~sluice.kv.base.KV`, built on its atomic ``incr``.

    A reservation adds first and takes its amount back if the total went past the limit, so
    the granted amounts never exceed it, across every process sharing the KV. While a refused
    amount is being taken back a concurrent reservation may be refused too: under contention
    near the limit it errs towards refusing, never towards overspending.
    """

    def __init__(self, kv: KV, prefix: str = "spend:") -> None:
        self._kv = kv
        self._prefix = prefix

    async def add_within(self, key: str, micros: int, limit: int, ttl_s: float) -> bool:
        """Add if the total stays within ``limit`` (one round trip when it does)."""
        total = await self._kv.incr(self._prefix + key, micros, ttl_s)
        if total <= limit:
            return True
        await self._kv.incr(self._prefix + key, -micros, ttl_s)
        return False

    async def add(self, key: str, micros: int, ttl_s: float) -> None:
        """Add whatever the total."""
        await self._kv.incr(self._prefix + key, micros, ttl_s)

    async def total(self, key: str) -> int:
        """The total at ``key``."""
        value = await self._kv.get(self._prefix + key)
        return 0 if value is None else int(value)


@dataclass(frozen=True, slots=True)
class SpendStatus:
    """One budget's current window: spent and left (currency), and when it resets."""

    key: str
    limit: SpendLimit
    spent: float
    remaining: float
    resets_in: float


class Reservation:
    """An amount held against a budget until :meth:`commit` or :meth:`release` (once).

    As an async context manager it releases when the body raises, and otherwise commits the
    amount reserved unless the body committed already.
    """

    def __init__(self, budgets: SpendBudgets, key: str, slot: str, micros: int) -> None:
        self.key = key
        self.amount = micros / MICROS
        self._budgets = budgets
        self._slot = slot
        self._micros = micros
        self.settled = False

    async def commit(self, actual: float) -> None:
        """Charge what the call really cost, giving back or adding the difference."""
        if not self.settled:
            self.settled = True
            await self._budgets.adjust(self._slot, _micros(actual) - self._micros)

    async def release(self) -> None:
        """Give the whole amount back: the costly call did not happen."""
        if not self.settled:
            self.settled = True
            await self._budgets.adjust(self._slot, -self._micros)

    async def __aenter__(self) -> Reservation:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        await (self.release() if exc_type is not None else self.commit(self.amount))


def _text(amount: float) -> str:
    """An amount with at least two decimals and as many as a micro-unit needs (0.30, 0.000545):
    budgets on a single model call are fractions of a cent."""
    whole, _, decimals = f"{amount:.6f}".partition(".")
    return f"{whole}.{decimals.rstrip('0').ljust(2, '0')}"


def _micros(amount: float) -> int:
    if amount < 0:
        raise ValueError(f"spend amounts cannot be negative ({amount})")
    return round(amount * MICROS)


class SpendBudgets:
    """Spend limits per key (``workflow:NAME``, ``tenant:ID``), kept in one ledger.

    ``limits`` maps a key, or a kind with a star (``tenant:*``) as the default for its kind,
    to a :class:`SpendLimit`. A key without a limit is not capped. The clock is wall time
    (``time.time``) so that windows line up across processes; it is injectable for tests.
    """

    def __init__(
        self, limits: Mapping[str, SpendLimit], ledger: SpendLedger, *, clock: Clock = time.time
    ) -> None:
        self._limits = dict(limits)
        self._ledger = ledger
        self._clock = clock

    def limit(self, key: str) -> SpendLimit | None:
        """The limit on ``key``: its own, or its kind's default."""
        return self._limits.get(key) or self._limits.get(key.split(":", 1)[0] + ":*")

    async def reserve(self, key: str, amount: float) -> Reservation:
        """Hold ``amount`` against ``key``'s budget, or raise :class:`BudgetExhaustedError`."""
        micros, limit = _micros(amount), self.limit(key)
        if limit is None:
            return Reservation(self, key, "", micros)
        slot, left = self._slot(key, limit)
        if micros == 0:
            # Nothing to hold cannot overshoot; asking the ledger could refuse it while a
            # concurrent refused amount is being taken back (see KVLedger).
            return Reservation(self, key, slot, micros)
        if await self._ledger.add_within(slot, micros, _micros(limit.amount), left + _KEEP_S):
            return Reservation(self, key, slot, micros)
        # Granted amounts never pass the limit; a total above it holds concurrent refused
        # amounts not yet taken back (KVLedger), which were never spent.
        spent = min(await self._ledger.total(slot) / MICROS, limit.amount)
        degrade = limit.on_exhausted is OnExhausted.DEGRADE
        raise BudgetExhaustedError(
            f"spend budget for {key!r} is exhausted: {_text(spent)} of {_text(limit.amount)} per"
            f" {limit.window} spent, {_text(amount)} more asked; resets in {left:.0f} s"
            + ("; degrade: skip the costly call" if degrade else ""),
            key=key,
            retry_after=left,
            degrade=degrade,
        )

    async def status(self, key: str) -> SpendStatus | None:
        """``key``'s current window, or None when it has no limit."""
        limit = self.limit(key)
        if limit is None:
            return None
        slot, left = self._slot(key, limit)
        spent = await self._ledger.total(slot) / MICROS
        return SpendStatus(key, limit, spent, max(0.0, limit.amount - spent), left)

    async def adjust(self, slot: str, micros: int) -> None:
        """Correct a reservation's window total (used by :class:`Reservation`)."""
        if slot and micros:
            # The window's total keeps its TTL; one that ended meanwhile is only charged late.
            await self._ledger.add(slot, micros, _KEEP_S)

    def _slot(self, key: str, limit: SpendLimit) -> tuple[str, float]:
        """The ledger key of ``key``'s current window, and the seconds left in it."""
        now = self._clock()
        index = int(now // limit.window_s)
        left = (index + 1) * limit.window_s - now
        return f"{key}:{limit.window}:{index}", left
