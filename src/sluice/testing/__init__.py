"""Fakes and helpers for testing Sluice steps, workflows and apps (``docs/testing.md``).

For a step as a function, with the runtime's context:

- :func:`step_context` builds the ``ctx`` a step receives (options, services, tenant);
- :class:`ScriptedModel` is a model whose answers, errors and latency follow a script, and
  which records every request (:class:`Reply` gives one call its own latency);
- :class:`ManualClock` is a clock for every ``clock=`` parameter (breakers, retry budgets,
  SLO guards, spend budgets, caches), moved by the test; its ``sleep`` moves it too.

For a whole app: :class:`TestApp` starts it in the test's process on a temporary SQLite
store, with an HTTP client on its API and ``submit``/``wait``/``run`` helpers.

For real servers and conditions: :func:`free_port`, :func:`wait_ready` (an HTTP server
answering), :func:`wait_until` (any condition, polled), :class:`AsgiServer` (an ASGI app on a
real socket in this event loop, e.g. a webhook receiver) and
:class:`~sluice.testing.redis_server.RedisServer` (a private ``redis-server``).

The chaos drills and the model simulator are in :mod:`sluice.drills`.
"""

from sluice.testing.app import TestApp
from sluice.testing.clock import ManualClock
from sluice.testing.context import step_context
from sluice.testing.scripted_model import Outcome, Reply, ScriptedModel
from sluice.testing.servers import AsgiServer, free_port, wait_ready
from sluice.testing.waiting import wait_until

__all__ = [
    "AsgiServer",
    "ManualClock",
    "Outcome",
    "Reply",
    "ScriptedModel",
    "TestApp",
    "free_port",
    "step_context",
    "wait_ready",
    "wait_until",
]
