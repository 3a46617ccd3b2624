"""Spend budgets on every ledger: no overshoot under concurrency, settling, windows, errors."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from sluice.errors import AdmissionError, ConfigError, SluiceError
from sluice.kv.memory import MemoryKV
from sluice.reliability.spend import (
    BudgetExhaustedError,
    KVLedger,
    MemoryLedger,
    OnExhausted,
    Reservation,
    SpendBudgets,
    SpendLedger,
    SpendLimit,
)
from sluice.testing import ManualClock
from tests.kv.conftest import patient_redis

HOUR = 3600.0
# Ten minutes into an hour, so an hourly window has 3000 s left.
START = 500_000 * HOUR + 600.0

# Builds a ledger on the test's clock; several calls share one backing store.
LedgerFactory = Callable[[], SpendLedger]


@pytest.fixture(params=["memory", "kv-memory", "redis"])
async def ledgers(
    request: pytest.FixtureRequest, clock: ManualClock
) -> AsyncIterator[LedgerFactory]:
    """Ledgers of each kind; for Redis each one has its own client, like separate processes."""
    if request.param == "memory":
        ledger = MemoryLedger(clock=clock)
        yield lambda: ledger
        return
    if request.param == "kv-memory":
        kv = MemoryKV()
        yield lambda: KVLedger(kv)
        return
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    clients = [patient_redis(prefix)]
    await clients[0].open()  # an unreachable Redis fails the test here rather than skipping

    def make() -> SpendLedger:
        clients.append(patient_redis(prefix))
        return KVLedger(clients[-1])

    try:
        yield make
    finally:
        await clients[0].delete_prefix()
        for client in clients:
            await client.aclose()


@pytest.fixture
def clock() -> ManualClock:
    """Wall time, ten minutes into an hour."""
    return ManualClock(START)


def budgets_on(ledger: SpendLedger, clock: ManualClock, **limits: SpendLimit) -> SpendBudgets:
    """Budgets with the given limits (``tenant_acme`` stands for ``tenant:acme``)."""
    return SpendBudgets({k.replace("_", ":"): v for k, v in limits.items()}, ledger, clock=clock)


async def try_reserve(budgets: SpendBudgets, key: str, amount: float) -> Reservation | None:
    """A reservation, or None when the budget refuses it."""
    try:
        return await budgets.reserve(key, amount)
    except BudgetExhaustedError:
        return None


class TestNoOvershoot:
    async def test_100_concurrent_reservations_fit_the_limit(
        self, ledgers: LedgerFactory, clock: ManualClock
    ) -> None:
        """100 concurrent 0.37 reservations on 10.00 grant exactly 27 (9.99): none over."""
        limit = {"tenant_acme": SpendLimit(10.0)}
        # Two budget objects (two gateways, for Redis two clients) share one total.
        sides = [budgets_on(ledgers(), clock, **limit), budgets_on(ledgers(), clock, **limit)]
        granted = await asyncio.gather(
            *(try_reserve(sides[i % 2], "tenant:acme", 0.37) for i in range(100))
        )
        held = [r for r in granted if r is not None]
        assert len(held) == 27
        status = await sides[0].status("tenant:acme")
        assert status is not None
        assert status.spent == pytest.approx(9.99)

    async def test_mixed_amounts_never_overshoot(
        self, ledgers: LedgerFactory, clock: ManualClock
    ) -> None:
        """Random amounts reserved and committed concurrently never total more than the limit."""
        budgets = budgets_on(ledgers(), clock, workflow_triage=SpendLimit(5.0))
        rng = random.Random(7)
        amounts = [round(rng.uniform(0.05, 0.5), 6) for _ in range(100)]

        async def call(amount: float) -> float:
            reservation = await try_reserve(budgets, "workflow:triage", amount)
            if reservation is None:
                return 0.0
            await asyncio.sleep(0)  # the costly call
            await reservation.commit(amount)
            return amount

        spent = sum(await asyncio.gather(*(call(a) for a in amounts)))
        status = await budgets.status("workflow:triage")
        assert status is not None
        assert spent <= 5.0
        assert status.spent == pytest.approx(spent)
        assert spent > 5.0 - 0.5  # refusals only happen near the limit


class TestSettling:
    async def test_commit_charges_the_actual_cost(
        self, ledgers: LedgerFactory, clock: ManualClock
    ) -> None:
        """Committing less gives the rest back; committing more charges the extra."""
        budgets = budgets_on(ledgers(), clock, tenant_acme=SpendLimit(1.0))
        first = await budgets.reserve("tenant:acme", 0.5)
        await first.commit(0.1)
        second = await budgets.reserve("tenant:acme", 0.2)
        await second.commit(0.3)
        status = await budgets.status("tenant:acme")
        assert status is not None
        assert (status.spent, status.remaining) == pytest.approx((0.4, 0.6))

    async def test_release_and_settling_once(
        self, ledgers: LedgerFactory, clock: ManualClock
    ) -> None:
        """Release gives the whole amount back, and a reservation settles only once."""
        budgets = budgets_on(ledgers(), clock, tenant_acme=SpendLimit(1.0))
        reservation = await budgets.reserve("tenant:acme", 0.9)
        await reservation.release()
        await reservation.commit(0.9)  # already settled: no effect
        await reservation.release()
        status = await budgets.status("tenant:acme")
        assert status is not None
        assert status.spent == 0.0
        assert reservation.settled

    async def test_context_manager(self, ledgers: LedgerFactory, clock: ManualClock) -> None:
        """The block commits the reservation when it ends well and releases it on error."""
        budgets = budgets_on(ledgers(), clock, tenant_acme=SpendLimit(1.0))
        async with await budgets.reserve("tenant:acme", 0.25):
            pass
        with pytest.raises(RuntimeError):
            async with await budgets.reserve("tenant:acme", 0.5):
                raise RuntimeError("the call failed")
        async with await budgets.reserve("tenant:acme", 0.5) as reservation:
            await reservation.commit(0.05)
        status = await budgets.status("tenant:acme")
        assert status is not None
        assert status.spent == pytest.approx(0.3)


class TestExhaustion:
    async def test_error_says_what_and_when(
        self, ledgers: LedgerFactory, clock: ManualClock
    ) -> None:
        """The error names the key and figures, is an AdmissionError and waits for the hour."""
        budgets = budgets_on(ledgers(), clock, tenant_acme=SpendLimit(1.0))
        await budgets.reserve("tenant:acme", 0.8)
        with pytest.raises(BudgetExhaustedError) as info:
            await budgets.reserve("tenant:acme", 0.3)
        error = info.value
        assert isinstance(error, AdmissionError)
        assert isinstance(error, SluiceError)
        assert error.retry_after == pytest.approx(3000.0)
        assert (error.key, error.degrade) == ("tenant:acme", False)
        assert str(error) == (
            "spend budget for 'tenant:acme' is exhausted: 0.80 of 1.00 per hour spent,"
            " 0.30 more asked; resets in 3000 s"
        )
        await budgets.reserve("tenant:acme", 0.2)  # what still fits is granted

    async def test_fractions_of_a_cent_are_shown(
        self, ledgers: LedgerFactory, clock: ManualClock
    ) -> None:
        """A budget on single model calls is a fraction of a cent: the error keeps its digits."""
        budgets = budgets_on(ledgers(), clock, workflow_orders=SpendLimit(0.0003))
        await budgets.reserve("workflow:orders", 0.000185)
        with pytest.raises(BudgetExhaustedError) as info:
            await budgets.reserve("workflow:orders", 0.000185)
        assert "0.000185 of 0.0003 per hour spent, 0.000185 more asked" in str(info.value)

    async def test_degrade_policy_is_reported(
        self, ledgers: LedgerFactory, clock: ManualClock
    ) -> None:
        """A degrade budget's error tells the caller to skip the costly call instead."""
        limit = SpendLimit(0.1, "day", OnExhausted.DEGRADE)
        budgets = budgets_on(ledgers(), clock, workflow_triage=limit)
        with pytest.raises(BudgetExhaustedError, match="degrade: skip the costly call") as info:
            await budgets.reserve("workflow:triage", 0.2)  # more than the whole budget
        assert info.value.degrade
        assert info.value.retry_after == pytest.approx(86400.0 - (START % 86400.0))


class TestWindows:
    async def test_a_new_hour_starts_from_zero(
        self, ledgers: LedgerFactory, clock: ManualClock
    ) -> None:
        """At the hour's end the window rolls over and the full budget is back."""
        budgets = budgets_on(ledgers(), clock, tenant_acme=SpendLimit(1.0))
        await budgets.reserve("tenant:acme", 1.0)
        clock.advance(2999.9)
        assert await try_reserve(budgets, "tenant:acme", 0.01) is None
        clock.advance(0.1)
        status = await budgets.status("tenant:acme")
        assert status is not None
        assert (status.spent, status.resets_in) == (0.0, HOUR)
        await budgets.reserve("tenant:acme", 1.0)

    async def test_limits_by_key_kind_and_none(
        self, ledgers: LedgerFactory, clock: ManualClock
    ) -> None:
        """A key's own limit wins over its kind's default; a key without either is uncapped."""
        budgets = SpendBudgets(
            {"tenant:*": SpendLimit(1.0), "tenant:big": SpendLimit(100.0)},
            ledgers(),
            clock=clock,
        )
        assert await try_reserve(budgets, "tenant:small", 2.0) is None
        await budgets.reserve("tenant:big", 50.0)
        await budgets.reserve("workflow:any", 1e6)
        assert await budgets.status("workflow:any") is None


class TestValidation:
    def test_bad_limits_and_amounts(self) -> None:
        """Limits need a positive amount and an hour or day window; amounts cannot be negative."""
        with pytest.raises(ConfigError):
            SpendLimit(0.0)
        with pytest.raises(ConfigError):
            SpendLimit(1.0, "week")

    async def test_negative_amount(self, clock: ManualClock) -> None:
        """A negative reservation is a programming error, refused before the ledger."""
        budgets = budgets_on(MemoryLedger(clock=clock), clock, tenant_acme=SpendLimit(1.0))
        with pytest.raises(ValueError, match="negative"):
            await budgets.reserve("tenant:acme", -1.0)

    async def test_memory_ledger_is_bounded(self, clock: ManualClock) -> None:
        """Expired windows are swept when the ledger is full; live ones past the bound refuse."""
        ledger = MemoryLedger(clock=clock, max_keys=2)
        await ledger.add("a", 1, 10.0)
        await ledger.add("b", 1, 10.0)
        with pytest.raises(ConfigError, match="ledger full"):
            await ledger.add("c", 1, 10.0)
        clock.advance(10)
        await ledger.add("c", 1, 10.0)
        assert (await ledger.total("a"), await ledger.total("c")) == (0, 1)
