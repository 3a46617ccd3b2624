"""A worker pool: claims jobs of one pool and runs at most ``concurrency`` of them at once.

Each pool has its own claim loop and its own cap, so a slow pool never takes slots from
another. A pool stops claiming while a pool it feeds has a full queue: backpressure travels
upstream to admission instead of piling up work in the middle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sluice.config import PoolSettings
from sluice.runtime.executor import StepExecutor
from sluice.store.base import Job, JobStore

log = logging.getLogger("sluice.runtime")


class PoolWorker:
    """The claim loop and in-flight set of one pool in this process."""

    def __init__(
        self,
        settings: PoolSettings,
        store: JobStore,
        executor: StepExecutor,
        owner: str,
        lease_s: float,
        poll_s: float,
        blocked: Callable[[], bool] = lambda: False,
        concurrency: int | None = None,
    ) -> None:
        self.settings = settings
        self.concurrency = concurrency or settings.concurrency
        self._store = store
        self._executor = executor
        self._owner = owner
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._blocked = blocked
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.max_in_flight = 0
        self.started = 0

    @property
    def name(self) -> str:
        """The pool's name."""
        return self.settings.name

    @property
    def in_flight(self) -> int:
        """Jobs of this pool running now in this process."""
        return len(self._tasks)

    def wake(self) -> None:
        """New work may be ready for this pool: look now instead of at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Start the claim loop."""
        self._loop_task = asyncio.create_task(self._claim_loop(), name=f"pool-{self.name}")

    async def stop(self, drain_s: float = 5.0) -> None:
        """Stop claiming, give running jobs ``drain_s`` to finish, cancel the rest."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=drain_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _claim_loop(self) -> None:
        while True:
            free = self.concurrency - len(self._tasks)
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            if self._blocked():
                await asyncio.sleep(self._poll_s)
                continue
            self._wake.clear()
            try:
                jobs = await self._store.claim(self.name, free, self._owner, self._lease_s)
            except Exception:
                log.exception("pool %s: claim failed", self.name)
                await asyncio.sleep(self._poll_s)
                continue
            if not jobs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_s)
                continue
            for job in jobs:
                self._spawn(job)

    def _spawn(self, job: Job) -> None:
        task = asyncio.create_task(self._run(job))
        self._tasks.add(task)
        self.started += 1
        self.max_in_flight = max(self.max_in_flight, len(self._tasks))
        task.add_done_callback(self._done)

    async def _run(self, job: Job) -> None:
        try:
            await self._executor.execute(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pool %s: job %s of event %s failed", self.name, job.id, job.event_id)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot_free.set()
