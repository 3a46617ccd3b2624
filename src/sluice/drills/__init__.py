"""Chaos drills and the model simulator: Sluice run for real, loaded and hurt on purpose.

A drill (``sluice chaos DRILL``) starts an app as it is deployed, offers it load over HTTP,
breaks something (a worker, the model provider, the cache's Redis) and reports what survived:

- :mod:`~sluice.drills.kill_worker`: workers SIGKILLed while events flow;
- :mod:`~sluice.drills.throttle_model`: the costly model slow and throttled, guarded and bare;
- :mod:`~sluice.drills.flood`: offered load far past capacity;
- :mod:`~sluice.drills.kill_cache`: the shared cache's Redis SIGKILLed under load.

:mod:`~sluice.drills.base` holds what they share (options, the report, processes), and
:mod:`~sluice.drills.load` the open-loop load generator. The model simulator
(:mod:`~sluice.drills.simulator`, served by :mod:`~sluice.drills.simulator_server`, the
``sluice simulate-model`` command) is a test double of an OpenAI-compatible provider, used by
the drills, the benchmarks and the project's tests; :mod:`~sluice.drills.apps` writes the
triage app's variants they run.

The drills are operational tools built on :mod:`sluice.testing` (ports, readiness, servers);
nothing below this package imports it.
"""

from sluice.drills.base import DrillOptions, DrillReport
from sluice.drills.flood import flood
from sluice.drills.kill_cache import kill_cache_drill
from sluice.drills.kill_worker import kill_worker_drill
from sluice.drills.throttle_model import throttle_model

__all__ = [
    "DrillOptions",
    "DrillReport",
    "flood",
    "kill_cache_drill",
    "kill_worker_drill",
    "throttle_model",
]
