"""What the routing rules cost a model call: ``Routing.check_step_model`` and
``Routing.gateway_targets`` beside an empty ``await`` (the baseline), in one run.

Each round awaits ``--calls`` checks of each kind in turn: the baseline (a coroutine that
returns at once), a step check with no rules set (every app pays this), a step check against a
document of ``--tenants`` tenant rules and as many workflow rules, and the AI gateway's check
of a two-deployment group against the same document. The rules come from a real SQLite store
(read once, then from the process's copy, as in a running app). Medians over ``--rounds`` of
nanoseconds a call, and each one's excess over the baseline, are printed; the last line is
one JSON object.

    .venv/bin/python bench/routing.py [--calls 50000] [--rounds 7] [--tenants 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sluice.governance.routing import Routing
from sluice.store.sqlite import SqliteStore


async def _nothing() -> None:
    return None


async def _time(calls: int, fn: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        await fn()
    return (time.perf_counter_ns() - started) / calls


async def main(calls: int, rounds: int, tenants: int) -> dict[str, float]:
    """Median nanoseconds a call of each kind."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "routing.db")
        await store.open()
        try:
            # Two processes' views of one store: the first read it before any rules were set.
            empty = Routing(store, {"llm": "api.example.com"}, refresh_s=3600)
            full = Routing(store, {"llm": "api.example.com"}, refresh_s=3600)
            await empty.rules()
            rules = {
                "tenants": {f"t{i}": {"models": ["llm", "small"], "providers": ["api.example.com"]}
                            for i in range(tenants)},
                "workflows": {f"w{i}": {"models": ["llm"]} for i in range(tenants)},
            }  # fmt: skip
            await full.set(rules, "bench")
            await full.rules()
            targets = [("primary", "api.example.com"), ("backup", "local")]
            kinds: dict[str, Callable[[], Awaitable[object]]] = {
                "baseline_await": _nothing,
                "step_no_rules": lambda: empty.check_step_model("llm", tenant="t7", workflow="w7"),
                "step_rules": lambda: full.check_step_model("llm", tenant="t7", workflow="w7"),
                "gateway_rules": lambda: full.gateway_targets("llm", targets, tenant="t7",
                                                              key="k"),
            }  # fmt: skip
            samples: dict[str, list[float]] = {k: [] for k in kinds}
            for _ in range(rounds):
                for name, fn in kinds.items():
                    samples[name].append(await _time(calls, fn))
        finally:
            await store.aclose()
    return {name: statistics.median(values) for name, values in samples.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tenants", type=int, default=100)
    args = parser.parse_args()
    medians = asyncio.run(main(args.calls, args.rounds, args.tenants))
    base = medians["baseline_await"]
    for name, ns in medians.items():
        print(f"{name:16} {ns:8.0f} ns a call  (+{ns - base:6.0f} ns over the baseline)")
    print(json.dumps({k: round(v) for k, v in medians.items()}))
