"""Single flight: concurrent callers with one key share one computation.

Three places need it: the ingress (concurrent deliveries of one webhook take one queue slot
and one write), the response cache (a burst of identical tickets costs one model call) and
the AI gateway's idempotency keys (repeats of a running request wait for its answer). The
KV holds what processes share; this holds what the callers of one process share while the
computation runs, and forgets it as soon as it is done.

The rules, the same for every user:

* the first caller of a key (the leader) runs ``work`` in its own task, without a hop: the
  common case, a key nobody else is asking for, costs a dictionary entry and a future;
* later callers of the key (followers) wait for the leader's result;
* an error of the leader reaches every follower (``share_errors=True``, the default) or, with
  ``share_errors=False``, the followers elect a new leader among themselves and try again
  (for work whose failure belongs to one request, such as a rate-limit refusal);
* cancelling a follower cancels only that follower; cancelling the leader cancels its
  ``work``, and the followers carry on: one of them runs ``work`` again as the new leader;
* at most ``max_keys`` keys are in flight: past that, callers run ``work`` unshared, so a
  flood of distinct keys costs no more memory than the work itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Shares one computation among concurrent callers of one key; one event loop owns it."""

    def __init__(self, max_keys: int = 10_000) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.max_keys = max_keys
        self._flights: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        """Keys in flight now."""
        return len(self._flights)

    def __contains__(self, key: object) -> bool:
        """Whether a computation for ``key`` is running."""
        return key in self._flights

    async def do(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        """``work()``'s result, computed once for every concurrent caller of ``key``."""
        value, _ = await self.do_shared(key, work)
        return value

    async def do_shared(
        self, key: K, work: Callable[[], Awaitable[V]], *, share_errors: bool = True
    ) -> tuple[V, bool]:
        """``work()``'s result and whether another caller computed it (``True``: shared).

        ``share_errors=False``: a follower whose leader failed does not see the error; the
        followers try again under a new leader (see the module docs).
        """
        while True:
            flight = self._flights.get(key)
            if flight is None:
                if len(self._flights) >= self.max_keys:
                    return await work(), False
                # Led inline, not in a method of its own: the uncontended key is the
                # common case on the ingress's accept path, and a coroutine frame counts.
                flight = asyncio.get_running_loop().create_future()
                self._flights[key] = flight
                try:
                    value = await work()
                except asyncio.CancelledError:
                    self._land(key, flight)
                    flight.cancel()
                    raise
                except BaseException as exc:
                    self._land(key, flight)
                    flight.set_exception(exc)
                    # Retrieved: followers re-raise it, but there may be none to do so.
                    flight.exception()
                    raise
                # Landed before the result is set, so a follower that loops round (after a
                # cancellation or a failure) never finds a finished flight.
                self._land(key, flight)
                flight.set_result(value)
                return value, False
            try:
                return await asyncio.shield(flight), True
            except asyncio.CancelledError:
                if not flight.cancelled():
                    raise  # this caller was cancelled, not the leader
                # The leader was cancelled: its work is gone. Try again; the first follower
                # back finds no flight and leads.
            except Exception:
                if share_errors:
                    raise

    def _land(self, key: K, flight: asyncio.Future[V]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
