"""The runtime: accepts events, runs the pools of this process, and keeps leases alive.

One :class:`Runtime` per process. ``serve`` runs every pool next to the HTTP server;
``worker --pool`` runs some pools only; ``serve --no-workers`` runs none and only accepts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from sluice.config import PoolSettings, RuntimeSettings
from sluice.errors import ConfigError
from sluice.ids import new_event_id
from sluice.runtime.acceptor import Acceptor, Submission
from sluice.runtime.executor import StepExecutor
from sluice.runtime.pool import PoolWorker
from sluice.store.base import (
    EventRecord,
    EventState,
    Job,
    JobStore,
)
from sluice.telemetry.metrics import Metrics
from sluice.telemetry.tracing import Telemetry
from sluice.workflow.registry import WorkflowRegistry

log = logging.getLogger("sluice.runtime")
_FINAL = (EventState.DONE, EventState.DEAD)
# How often a process that leaves some pools to other processes re-reads their queue depths.
_DEPTH_REFRESH_S = 0.1


class Runtime:
    """Owns the pools of this process and the way in for new events."""

    def __init__(
        self,
        store: JobStore,
        registry: WorkflowRegistry,
        pools: Mapping[str, PoolSettings],
        settings: RuntimeSettings | None = None,
        services: Mapping[str, Any] | None = None,
        run_pools: Collection[str] | None = None,
        concurrency: Mapping[str, int] | None = None,
        metrics: Metrics | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.pools = dict(pools)
        self.settings = settings or RuntimeSettings()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{new_event_id()[-8:]}"
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._maintenance: asyncio.Task[None] | None = None
        self._depth_watch: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._services: Mapping[str, Any] = services or {}
        #: The one way in for new events (admission, input check, event creation, accept).
        self.acceptor = Acceptor(store, self.pools, self._services, self.wake, telemetry)
        self._executor = StepExecutor(
            store, registry, self._services, self._settled, metrics=metrics
        )
        wanted = set(self.pools) if run_pools is None else set(run_pools)
        unknown = wanted - set(self.pools)
        if unknown:
            raise ConfigError(f"unknown pool(s): {', '.join(sorted(unknown))}")
        feeds = registry.pools_fed_by()
        poll_s = self.settings.poll_ms / 1000
        self.workers: dict[str, PoolWorker] = {}
        for name in sorted(wanted):
            budgets = [s.budget_ms for wf in registry for s in wf.steps if s.pool == name]
            lease_s = (max(budgets, default=0) + self.settings.lease_ms) / 1000
            self.workers[name] = PoolWorker(
                self.pools[name], store, self._executor, self.owner, lease_s, poll_s,
                blocked=self._blocked_by(feeds.get(name, set())),
                concurrency=(concurrency or {}).get(name),
            )  # fmt: skip

    # lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Announce this owner, reclaim what dead owners left, and start the pools."""
        await self.store.heartbeat(self.owner)
        await self.store.reclaim(self._stale_after_s)
        # A store that announces new work from other processes (PostgreSQL LISTEN/NOTIFY)
        # wakes idle pools at once instead of at their next poll.
        subscribe = getattr(self.store, "on_work", None)
        if subscribe is not None and self.workers:
            self._unsubscribe = subscribe(self._wake_pool)
        for worker in self.workers.values():
            worker.start()
        self._maintenance = asyncio.create_task(self._maintain(), name="runtime-maintenance")
        if set(self.workers) != set(self.pools):
            # Admission here counts jobs that other processes claim: a view refreshed only
            # every heartbeat would cap admissions near queue_limit per heartbeat.
            self._depth_watch = asyncio.create_task(self._watch_depths(), name="runtime-depths")

    async def stop(self) -> None:
        """Stop claiming, drain running steps briefly, and hand back what is left."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in (self._maintenance, self._depth_watch):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._depth_watch = None
        await asyncio.gather(*(w.stop() for w in self.workers.values()))
        released = await self.store.release(self.owner)
        if released:
            log.info("released %d leased jobs on shutdown", released)

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def _stale_after_s(self) -> float:
        return 5 * self.settings.heartbeat_ms / 1000

    async def _maintain(self) -> None:
        beat_s = self.settings.heartbeat_ms / 1000
        while True:
            await asyncio.sleep(beat_s)
            try:
                await self.store.heartbeat(self.owner)
                if await self.store.reclaim(self._stale_after_s):
                    for worker in self.workers.values():
                        worker.wake()
                self._refresh_depths(await self.store.queue_depths())
            except Exception:
                log.exception("runtime maintenance failed")

    async def _watch_depths(self) -> None:
        pause = _DEPTH_REFRESH_S
        while True:
            await asyncio.sleep(pause)
            started = time.perf_counter()
            try:
                self._refresh_depths(await self.store.queue_depths())
            except Exception:
                log.exception("refreshing queue depths failed")
            # Counting a long backlog costs milliseconds of the database's time: wait at least
            # ten times what the count took, so the count never takes more than a tenth of it.
            pause = max(_DEPTH_REFRESH_S, 10 * (time.perf_counter() - started))

    def _refresh_depths(self, depths: Mapping[str, int]) -> None:
        current = self.store.depths
        current.clear()
        current.update(depths)

    # admission -----------------------------------------------------------------------------
    def queue_depth(self, pool: str) -> int:
        """Ready jobs of ``pool`` as this process knows them, plus accepts in flight."""
        return self.acceptor.queue_depth(pool)

    def _blocked_by(self, downstream: set[str]) -> Any:
        def blocked() -> bool:
            return any(self.queue_depth(p) >= self.pools[p].queue_limit for p in downstream)

        return blocked

    async def submit(self, workflow_name: str, data: Any, tenant: str = "default") -> str:
        """Admit, validate and durably accept one event; return its id.

        The in-process way in (tests, benchmarks); HTTP goes through the ingress, which adds
        authentication, rate limits, idempotency, PII masking and quarantine, and then takes
        the same :meth:`Acceptor.take <sluice.runtime.acceptor.Acceptor.take>`.
        """
        workflow = self.registry.get(workflow_name)
        receipt = await self.acceptor.take(Submission(workflow, tenant, data))
        return receipt.event_id

    # completion ----------------------------------------------------------------------------
    def _wake_pool(self, pool: str | None) -> None:
        for name, worker in self.workers.items():
            if pool is None or name == pool:
                worker.wake()

    def wake(self, pool: str) -> None:
        """Tell this process's workers of ``pool`` (if any) that work may be waiting."""
        if (worker := self.workers.get(pool)) is not None:
            worker.wake()

    def _settled(self, job: Job, finished: bool, next_pool: str | None) -> None:
        if next_pool is not None and (worker := self.workers.get(next_pool)) is not None:
            worker.wake()
        if finished:
            for fut in self._waiters.pop(job.event_id, ()):
                if not fut.done():
                    fut.set_result(None)

    async def wait(self, event_id: str, timeout: float) -> EventRecord:
        """Wait up to ``timeout`` seconds for the event to finish; return it as it stands."""
        deadline = time.monotonic() + timeout
        while True:
            record = await self.store.get_event(event_id)
            left = deadline - time.monotonic()
            if record.state in _FINAL or left <= 0:
                return record
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(event_id, []).append(fut)
            try:
                # Poll too: another process may finish the event without telling us.
                await asyncio.wait_for(fut, min(left, 0.2))
            except TimeoutError:
                pass
            finally:
                waiters = self._waiters.get(event_id)
                if waiters is not None and fut in waiters:
                    waiters.remove(fut)
                    if not waiters:
                        del self._waiters[event_id]

    async def replay(self, event_id: str) -> bool:
        """Requeue a dead event with a fresh budget."""
        record = await self.store.get_event(event_id, with_steps=False)
        workflow = self.registry.get(record.workflow, record.version)
        ok = await self.store.replay(event_id, time.time() + workflow.budget_ms / 1000)
        for worker in self.workers.values():
            worker.wake()
        return ok

    def stats(self) -> dict[str, dict[str, int]]:
        """Per pool: cap, in flight, the most ever in flight, jobs started, queue depth."""
        return {
            name: {
                "concurrency": w.concurrency,
                "in_flight": w.in_flight,
                "max_in_flight": w.max_in_flight,
                "started": w.started,
                "queue_depth": self.queue_depth(name),
            }
            for name, w in self.workers.items()
        }
