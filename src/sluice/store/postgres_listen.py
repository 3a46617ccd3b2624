"""Wake-ups through ``LISTEN/NOTIFY``: idle workers wait for new work instead of polling.

Every write that makes a job ready sends ``NOTIFY <channel>, '<pool>'`` in its transaction, so
the notification is delivered at commit, to every listening process. :class:`WorkListener`
holds one dedicated connection per process, reconnects when it drops, and hands each
notification to subscribed callbacks and to :meth:`WorkListener.wait_for_work` waiters. After
a reconnect every subscriber is woken once, since notifications sent meanwhile were lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

log = logging.getLogger("sluice.store")
WorkCallback = Callable[[str | None], None]
"""Called with the pool that has new work, or None for "any pool may have new work"."""


class WorkListener:
    """One process's subscription to the store's work notifications."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        channel: str,
        reconnect_s: float = 1.0,
    ) -> None:
        self.channel = channel
        self._connect = connect
        self._reconnect_s = reconnect_s
        self._callbacks: list[WorkCallback] = []
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.notifications = 0

    async def start(self, timeout: float = 10.0) -> None:
        """Connect and listen; returns once listening (or after ``timeout``, still retrying)."""
        self._task = asyncio.create_task(self._supervise(), name="pg-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), timeout)

    async def aclose(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._fire(None)

    def on_work(self, callback: WorkCallback) -> Callable[[], None]:
        """Call ``callback(pool)`` on each notification; returns a function that unsubscribes."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    async def wait_for_work(self, pool: str, timeout: float) -> bool:
        """Wait until new work for ``pool`` is announced; False after ``timeout`` seconds."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(pool, set())
        waiters.add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        finally:
            waiters.discard(fut)
        return True

    def _fire(self, pool: str | None) -> None:
        targets = list(self._waiters.values()) if pool is None else [self._waiters.get(pool, set())]
        for waiters in targets:
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        for callback in list(self._callbacks):
            try:
                callback(pool)
            except Exception:
                log.exception("work callback failed")

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        self.notifications += 1
        self._fire(str(payload) if payload else None)

    async def _supervise(self) -> None:
        failing = False
        while True:
            try:
                conn = await self._connect()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if not failing:
                    log.warning("LISTEN connection failed (%s); retrying", exc)
                    failing = True
                await asyncio.sleep(self._reconnect_s)
                continue
            if failing:
                log.info("LISTEN connection restored")
            try:
                await self._listen(conn)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)
            log.warning("LISTEN connection lost; reconnecting")
            failing = True
            await asyncio.sleep(self._reconnect_s)

    async def _listen(self, conn: asyncpg.Connection) -> None:
        """Listen on ``conn`` until it terminates."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        await conn.add_listener(self.channel, self._on_notify)
        self._listening.set()
        # Notifications sent while we were away are lost: let everyone look once.
        self._fire(None)
        await lost.wait()


def channel_for(schema: str) -> str:
    """The notification channel of a schema (one per schema, so apps never wake each other)."""
    return f"sluice_work_{schema}"[:63]
