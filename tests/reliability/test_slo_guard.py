"""SLO guards: the sliding window, every policy, transitions, hysteresis and settings."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from sluice.errors import AdmissionError, ConfigError
from sluice.reliability.slo_guard import GuardState, SloGuard, SloPolicy, SloSettings
from sluice.testing import ManualClock

NORMAL, DEGRADED = GuardState.NORMAL, GuardState.DEGRADED
SHEDDING, CLOSED = GuardState.SHEDDING, GuardState.CLOSED


def make(clock: ManualClock, **settings: Any) -> SloGuard:
    """A guard on ``triage``: p95 1000 ms, 5% errors over 10 s, recovery after 5 s."""
    base: dict[str, Any] = {
        "p95_ms": 1000.0,
        "error_rate": 0.05,
        "window_s": 10.0,
        "recover_s": 5.0,
        "min_events": 10,
    }
    return SloGuard("triage", SloSettings(**{**base, **settings}), clock=clock)


def feed(guard: SloGuard, n: int, latency_ms: float, ok: bool = True) -> None:
    """Record ``n`` finished events of one latency and outcome."""
    for _ in range(n):
        guard.record(latency_ms, ok)


class TestWindow:
    def test_p95_is_close_to_the_exact_figure(self) -> None:
        """The histogram's p95 of 1..1000 ms lies within 15% of the exact 950 ms."""
        guard = make(ManualClock())
        for ms in range(1, 1001):
            guard.record(float(ms), True)
        p95 = guard.snapshot().window.p95_ms
        assert abs(p95 - 950) / 950 < 0.15

    def test_p95_sees_a_slow_tail(self) -> None:
        """Six slow events in a hundred put p95 at the slow figure, not the fast one."""
        guard = make(ManualClock(), p95_ms=10_000.0)
        feed(guard, 94, 10.0)
        feed(guard, 6, 2000.0)
        window = guard.snapshot().window
        assert 1700 < window.p95_ms <= 2000 * 1.15
        assert window.events == 100
        assert window.errors == 0

    def test_samples_leave_the_window_a_second_at_a_time(self) -> None:
        """Events older than window_s roll out; newer ones stay and keep their errors."""
        clock = ManualClock(1000.0)
        guard = make(clock, min_events=1000)
        feed(guard, 10, 50.0, ok=False)
        clock.advance(5)
        feed(guard, 10, 50.0)
        clock.advance(4.5)  # 1009.5: both seconds are in the window
        assert guard.snapshot().window.events == 20
        clock.advance(0.5)  # 1010.0: second 1000 has left
        window = guard.snapshot().window
        assert (window.events, window.errors, window.error_rate) == (10, 0, 0.0)

    def test_a_long_gap_empties_the_window(self) -> None:
        """After a silence far longer than the window, nothing of the past is counted."""
        clock = ManualClock()
        guard = make(clock, min_events=1000)
        feed(guard, 50, 3000.0, ok=False)
        clock.advance(100_000)
        feed(guard, 3, 20.0)
        window = guard.snapshot().window
        assert (window.events, window.errors) == (3, 0)
        assert window.p95_ms <= 20 * 1.15

    def test_counts_outlive_the_window(self) -> None:
        """The snapshot's counts are totals since start, not just the window."""
        clock = ManualClock()
        guard = make(clock, min_events=1000)
        feed(guard, 5, 10.0, ok=False)
        clock.advance(60)
        feed(guard, 5, 10.0)
        counts = guard.snapshot().counts
        assert (counts["events"], counts["errors"]) == (10, 5)


class TestSlip:
    def test_too_few_events_are_not_judged(self) -> None:
        """Below min_events even all-failing, slow events leave the guard normal."""
        guard = make(ManualClock())
        feed(guard, 9, 5000.0, ok=False)
        assert guard.state is NORMAL
        feed(guard, 1, 5000.0, ok=False)
        assert guard.state is DEGRADED

    def test_latency_slip_names_the_figure(self) -> None:
        """A p95 over its target degrades the guard, and the reason quotes both figures."""
        guard = make(ManualClock())
        feed(guard, 20, 3000.0)
        snap = guard.snapshot()
        assert snap.state is DEGRADED
        assert snap.slipped is not None
        assert snap.slipped.startswith("p95 ")
        assert snap.slipped.endswith(" ms > 1000 ms")

    def test_error_rate_slip(self) -> None:
        """Errors past 5% slip the SLO even when every event is fast; exactly 5% does not."""
        guard = make(ManualClock())
        feed(guard, 19, 10.0)
        feed(guard, 1, 10.0, ok=False)
        assert guard.state is NORMAL
        feed(guard, 1, 10.0, ok=False)
        assert guard.state is DEGRADED
        assert guard.snapshot().slipped == "error rate 9.5% > 5.0%"

    def test_within_slo_but_near_it_stays_normal(self) -> None:
        """The margin governs recovery only: 900 ms under a 1000 ms target is no slip."""
        guard = make(ManualClock())
        feed(guard, 100, 850.0)
        feed(guard, 1, 10.0, ok=False)
        assert guard.state is NORMAL


class TestPolicies:
    def test_degrade_admits_everything_and_flags_degraded(self) -> None:
        """Under degrade, all work is admitted and callers are told to skip escalation."""
        guard = make(ManualClock())
        assert not guard.degraded
        feed(guard, 20, 3000.0)
        assert guard.degraded
        assert all(guard.admit() for _ in range(50))
        assert guard.snapshot().retry_after == 0.0

    def test_shed_admits_exactly_its_share(self) -> None:
        """Shedding at 25% admits 25 of 100 requests, spread evenly, and counts the rest."""
        guard = make(ManualClock(), policy=SloPolicy.SHED, shed_admit=0.25)
        feed(guard, 20, 3000.0)
        assert guard.state is SHEDDING
        admitted = [guard.admit() for _ in range(100)]
        assert sum(admitted) == 25
        assert admitted[:8] == [False, False, False, True] * 2
        assert not guard.degraded
        assert guard.snapshot().counts["shed"] == 75

    def test_shed_refusal_raises_admission_error(self) -> None:
        """A shed request raises AdmissionError saying the workflow is shedding load."""
        guard = make(ManualClock(), policy=SloPolicy.SHED, shed_admit=0.5)
        feed(guard, 20, 3000.0)
        with pytest.raises(AdmissionError, match="'triage' is shedding load"):
            guard.check()
        guard.check()  # the next one is within the admitted half

    def test_fail_closed_refuses_all_with_the_figure(self) -> None:
        """Fail closed refuses every request; the error names the workflow and what slipped."""
        guard = make(ManualClock(), policy=SloPolicy.FAIL_CLOSED)
        feed(guard, 20, 10.0, ok=False)
        assert guard.state is CLOSED
        assert not any(guard.admit() for _ in range(10))
        with pytest.raises(AdmissionError) as info:
            guard.check()
        message = str(info.value)
        assert "workflow 'triage' is refusing new work" in message
        assert "error rate 100.0% > 5.0%" in message
        assert info.value.retry_after == 5.0
        assert guard.snapshot().counts["refused"] == 11


class TestRecovery:
    def test_recovers_only_after_recover_s_of_health(self) -> None:
        """Back to normal only once the SLO has held for recover_s, not a moment before."""
        clock = ManualClock(1000.0)
        guard = make(clock)
        feed(guard, 20, 3000.0)
        clock.advance(10)  # the slow events have left the window
        for _ in range(5):
            feed(guard, 20, 100.0)
            assert guard.state is DEGRADED
            clock.advance(1)
        feed(guard, 20, 100.0)
        assert guard.state is NORMAL
        last = guard.snapshot().last_transition
        assert last is not None
        assert last.reason == "SLO held within 0.8x for 5 s"

    def test_inside_the_slo_but_outside_the_margin_never_recovers(self) -> None:
        """Hysteresis: p95 ~900 ms meets a 1000 ms SLO but not 0.8x, so no recovery."""
        clock = ManualClock()
        guard = make(clock)
        feed(guard, 20, 3000.0)
        clock.advance(10)
        for _ in range(30):
            feed(guard, 20, 900.0)
            clock.advance(1)
        assert guard.state is DEGRADED

    def test_a_relapse_restarts_the_recovery_clock(self) -> None:
        """A slip during recovery puts the recover_s wait back to its full length."""
        clock = ManualClock()
        guard = make(clock, policy=SloPolicy.SHED)
        feed(guard, 20, 3000.0)
        clock.advance(10)
        feed(guard, 20, 100.0)
        clock.advance(4)
        feed(guard, 20, 100.0)
        assert guard.snapshot().retry_after == pytest.approx(1.0)
        feed(guard, 10, 5000.0)  # p95 of 50 events is now slow: recovery is off
        assert guard.snapshot().retry_after == 5.0
        clock.advance(7)  # the window drops the first good seconds, keeps the slow ones
        assert guard.state is SHEDDING
        clock.advance(4)  # everything slow has left, but an empty window is no evidence
        assert guard.state is SHEDDING
        clock.advance(5)
        assert guard.state is SHEDDING
        feed(guard, 10, 100.0)  # evidence: health starts now
        clock.advance(5)
        assert guard.state is NORMAL

    def test_silence_is_not_health(self) -> None:
        """Issue 20 #12: a closed guard whose window drained stays closed; no events, no
        evidence. (It used to reopen recover_s after the window emptied, and cycle.)"""
        clock = ManualClock()
        guard = make(clock, p95_ms=300.0, policy=SloPolicy.FAIL_CLOSED, recover_s=3.0)
        feed(guard, 20, 800.0)
        assert guard.state is CLOSED
        for _ in range(30):  # nothing finishes: every step is held at 800 ms
            clock.advance(1)
            assert guard.state is CLOSED
        last = guard.snapshot().last_transition
        assert last is not None
        assert last.target is CLOSED

    def test_fail_closed_probes_until_the_slip_is_confirmed(self) -> None:
        """Probes pass one per window / (2 x min_events) while no slip is confirmed; slow
        probes confirm it and stop the probing until they leave the window."""
        clock = ManualClock()
        guard = make(clock, p95_ms=300.0, policy=SloPolicy.FAIL_CLOSED, recover_s=3.0)
        feed(guard, 20, 800.0)
        assert not guard.probing
        assert not guard.admit()  # the slip is in the window: no probes
        clock.advance(10.5)  # the slow events leave: no verdict, so probe
        assert guard.probing
        assert guard.probe_interval_s == 0.5
        assert guard.admit()
        assert not guard.admit()  # one probe per interval
        guard.record(800.0, ok=True)  # the probe is still slow
        probes = 1
        for _ in range(16):  # 8 s: the probes stay in the 10 s window
            clock.advance(0.5)
            if guard.admit():
                probes += 1
                guard.record(800.0, ok=True)
        assert probes == 10  # min_events slow probes confirm the slip; probing stops
        assert guard.state is CLOSED
        assert not guard.probing
        assert guard.snapshot().counts["probes"] == 10
        clock.advance(10)  # they leave the window: probing again
        assert guard.admit()

    def test_fail_closed_recovers_on_fast_probes(self) -> None:
        """Probes that finish within the SLO are the evidence: recovery recover_s after the
        window first holds min_events of them."""
        clock = ManualClock()
        guard = make(clock, p95_ms=300.0, policy=SloPolicy.FAIL_CLOSED, recover_s=3.0)
        feed(guard, 20, 800.0)
        clock.advance(10.5)
        admitted = 0
        while guard.state is CLOSED and admitted < 100:
            if guard.admit():
                admitted += 1
                guard.record(50.0, ok=True)
            clock.advance(0.25)
        assert guard.state is NORMAL
        assert admitted == 10 + 5  # min_events start the clock; 5 more probes while 3 s pass
        last = guard.snapshot().last_transition
        assert last is not None
        assert last.reason == "SLO held within 0.8x for 3 s"


class TestTransitions:
    def test_each_transition_is_logged_and_counted(self, caplog: pytest.LogCaptureFixture) -> None:
        """Two slip-and-recover cycles count two of each transition and log each one."""
        clock = ManualClock()
        guard = make(clock, recover_s=0.0)
        with caplog.at_level(logging.INFO, logger="sluice.reliability"):
            for _ in range(2):
                feed(guard, 20, 3000.0)
                clock.advance(11)
                feed(guard, 10, 100.0)
                assert guard.state is NORMAL
        snap = guard.snapshot()
        assert snap.transitions == {"normal->degraded": 2, "degraded->normal": 2}
        records = [r for r in caplog.records if r.name == "sluice.reliability"]
        assert [r.levelno for r in records] == [logging.WARNING, logging.INFO] * 2
        assert "slo guard triage: normal -> degraded (SLO slipped: p95" in records[0].message

    def test_snapshot_describes_the_guard(self) -> None:
        """A snapshot carries the policy, window, last transition and time to reopen."""
        clock = ManualClock()
        guard = make(clock, policy=SloPolicy.FAIL_CLOSED)
        feed(guard, 20, 3000.0)
        snap = guard.snapshot()
        assert (snap.workflow, snap.state, snap.policy) == ("triage", CLOSED, "fail_closed")
        assert snap.window.events == 20
        assert snap.retry_after == 5.0
        assert snap.last_transition is not None
        assert snap.last_transition.at == clock.now


class TestSettings:
    def test_from_a_workflow_section(self) -> None:
        """A workflow's slo: section becomes settings, with defaults for the rest."""
        slo = {"p95_ms": 1200, "error_rate": 0.02, "window_s": 120, "policy": "shed"}
        settings = SloSettings.from_mapping("triage", slo)
        assert settings.policy is SloPolicy.SHED
        assert (settings.p95_ms, settings.window_s, settings.recover_s) == (1200, 120, 30.0)

    def test_every_problem_is_reported(self) -> None:
        """Unknown keys, missing targets and a bad policy are all reported in one error."""
        with pytest.raises(ConfigError) as info:
            SloSettings.from_mapping("triage", {"p95": 1, "policy": "panic"})
        assert len(info.value.problems) == 4
        assert "workflow 'triage'" in str(info.value)

    @pytest.mark.parametrize(
        "slo",
        [
            {"p95_ms": -1, "error_rate": 0.1},
            {"p95_ms": 100, "error_rate": 0.1, "window_s": 7200},
            {"p95_ms": "fast", "error_rate": 0.1},
        ],
    )
    def test_bad_values_are_refused(self, slo: dict[str, Any]) -> None:
        """Out-of-range or mistyped values raise ConfigError naming the workflow."""
        with pytest.raises(ConfigError, match="workflow 'triage': invalid slo"):
            SloSettings.from_mapping("triage", slo)
