"""The SLO guards of an app: one per workflow with an ``slo:`` section, shared by processes.

A guard judges the events that finish in its process (the executor records each). Admission
happens in gateways, which may run no workers and so see no finished event: every second each
process publishes the state of its guards that are acting (not normal) to the KV, and reads
the others'. Admission acts on the worst of its own guard and the published states, so a
gateway sheds or refuses as soon as any worker's guard does (within about a second), and
stops once none has republished (the entries live three seconds). A closed guard that wants
probes publishes their interval, and each gateway lets one through per interval, so the
workers get the evidence they need to reopen (see :mod:`sluice.reliability.slo_guard`).

Workflow files declare the SLO and its policy::

    slo: {p95_ms: 300, error_rate: 0.01, window_s: 30, policy: degrade, recover_s: 10}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from sluice.errors import AdmissionError, ConfigError, SluiceError
from sluice.kv.base import KV
from sluice.kv.memory import MemoryKV
from sluice.reliability.retry_budget import Clock
from sluice.reliability.slo_guard import GuardState, SloGuard, SloSettings, SloSnapshot
from sluice.workflow.model import Workflow

log = logging.getLogger("sluice.reliability")

_PREFIX = "slo:state:"
_PUBLISH_S = 1.0
_TTL_S = 3.0
# Worst first: the state admission acts on when several processes disagree.
_SEVERITY = {GuardState.NORMAL: 0, GuardState.DEGRADED: 1, GuardState.SHEDDING: 2,
             GuardState.CLOSED: 3}  # fmt: skip


@dataclass(frozen=True, slots=True)
class PeerState:
    """A guard state another process published: what, why, and when to try again."""

    state: GuardState
    slipped: str
    retry_after: float
    probe_s: float = 0.0  # a closed guard's interval between probes; 0: no probes


class SloGuards:
    """Every guarded workflow's :class:`SloGuard`, fed by the executor, asked by admission."""

    def __init__(
        self, workflows: Iterable[Workflow], kv: KV | None = None, clock: Clock = time.monotonic
    ) -> None:
        self._guards: dict[str, SloGuard] = {}
        problems: list[str] = []
        for wf in workflows:
            slo = wf.extra.get("slo")
            if slo is None or wf.name in self._guards:
                continue
            if not isinstance(slo, dict):
                problems.append(f"workflow {wf.name!r}: slo must be a mapping")
                continue
            try:
                settings = SloSettings.from_mapping(wf.name, slo)
                self._guards[wf.name] = SloGuard(wf.name, settings, clock=clock)
            except ConfigError as exc:
                problems.extend(exc.problems or [str(exc)])
        if problems:
            raise ConfigError("invalid slo section", problems)
        self._kv = kv
        self._clock = clock
        self._me = secrets.token_hex(6)
        self._peers: dict[str, PeerState] = {}
        self._credit: dict[str, float] = {}
        self._probed: dict[str, float] = {}  # when this process last let a peer's probe through
        self.peer_refusals = 0
        self._task: asyncio.Task[None] | None = None

    def __bool__(self) -> bool:
        return bool(self._guards)

    def get(self, workflow: str) -> SloGuard | None:
        """The guard of ``workflow``, or None when it declares no SLO."""
        return self._guards.get(workflow)

    def record(self, workflow: str, latency_ms: float, ok: bool) -> None:
        """Count one finished event of ``workflow`` (a no-op without an SLO)."""
        guard = self._guards.get(workflow)
        if guard is not None:
            guard.record(latency_ms, ok)

    def degraded(self, workflow: str) -> bool:
        """Whether steps of ``workflow`` should skip costly escalations now."""
        guard = self._guards.get(workflow)
        if guard is None:
            return False
        peer = self._peers.get(workflow)
        return guard.degraded or (peer is not None and peer.state is GuardState.DEGRADED)

    def check(self, workflow: str) -> None:
        """Admit one new event of ``workflow`` or raise :class:`AdmissionError` (503)."""
        guard = self._guards.get(workflow)
        if guard is None:
            return
        peer = self._peers.get(workflow)
        if peer is None or _SEVERITY[peer.state] <= _SEVERITY[guard.state]:
            guard.check()
            return
        if peer.state is GuardState.DEGRADED:  # degrading admits everything
            return
        if peer.state is GuardState.SHEDDING:
            credit = self._credit.get(workflow, 0.0) + guard.settings.shed_admit
            if credit >= 1.0:
                self._credit[workflow] = credit - 1.0
                return
            self._credit[workflow] = credit
        elif peer.probe_s > 0:
            now = self._clock()
            if now - self._probed.get(workflow, -math.inf) >= peer.probe_s:
                self._probed[workflow] = now
                return
        self.peer_refusals += 1
        verb = "shedding load" if peer.state is GuardState.SHEDDING else "refusing new work"
        wait = max(1.0, peer.retry_after)
        raise AdmissionError(
            f"workflow {workflow!r} is {verb}: SLO slipped ({peer.slipped}); retry in {wait:.0f} s",
            retry_after=wait,
        )

    def snapshot(self) -> list[SloSnapshot]:
        """Every guard's snapshot, by workflow name."""
        return [self._guards[name].snapshot() for name in sorted(self._guards)]

    def peers(self) -> dict[str, PeerState]:
        """The states other processes published, by workflow."""
        return dict(self._peers)

    async def start(self) -> None:
        """Start sharing states through the KV, when other processes can see it.

        An in-process KV reaches no other process: nothing to share, no task.
        """
        shared = self._kv is not None and not isinstance(self._kv, MemoryKV)
        if shared and self._guards and self._task is None:
            self._task = asyncio.create_task(self._share(), name="slo-guards")

    async def aclose(self) -> None:
        """Stop sharing states."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def sync(self) -> None:
        """Publish this process's acting guards and read the others' (once)."""
        if self._kv is None:
            return
        peers: dict[str, PeerState] = {}
        for name, guard in self._guards.items():
            snap = guard.snapshot()
            if snap.state is not GuardState.NORMAL:
                probe_s = guard.probe_interval_s if guard.probing else 0.0
                value = {"by": self._me, "state": snap.state.value, "slipped": snap.slipped or "",
                         "retry_after": snap.retry_after, "probe_s": probe_s,
                         "at": time.time()}  # fmt: skip
                await self._kv.set(_PREFIX + name, orjson.dumps(value), ttl_s=_TTL_S)
            raw = await self._kv.get(_PREFIX + name)
            if raw is None:
                continue
            published = orjson.loads(raw)
            if published.get("by") != self._me:
                peers[name] = PeerState(
                    GuardState(published["state"]),
                    str(published.get("slipped", "")),
                    float(published.get("retry_after", 1.0)),
                    float(published.get("probe_s", 0.0)),
                )
        self._peers = peers

    async def _share(self) -> None:
        while True:
            try:
                await self.sync()
            except (SluiceError, OSError, ValueError, KeyError) as exc:
                # A KV outage must not stop admission: local guards still act.
                log.warning("slo guards: could not share states: %s", exc)
            await asyncio.sleep(_PUBLISH_S)
