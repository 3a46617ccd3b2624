"""Step contexts for calling a step function directly in a test.

A step is an ``async def step(ctx, data) -> dict``; the runtime builds ``ctx`` for every
attempt. :func:`step_context` builds the same :class:`~sluice.workflow.StepContext` with
defaults for whatever a test does not care about, so a step is tested as a plain function::

    ctx = step_context(step="enrich", options={"field": "email"}, services={"kv": MemoryKV()})
    assert await enrich(ctx, {"email": "ann@example.org"}) == {...}

``services`` is what ``ctx.service(name)`` finds: pass the fakes (or real in-memory
backends) the step reaches for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from sluice.workflow.context import StepContext


def step_context(
    *,
    step: str = "step",
    options: Mapping[str, Any] | None = None,
    services: Mapping[str, Any] | None = None,
    tenant: str = "default",
    workflow: str = "test",
    version: str = "1",
    event_id: str = "evt_test",
    attempt: int = 1,
    budget_s: float = 30.0,
    logger: logging.Logger | None = None,
    flag: str | None = None,
) -> StepContext:
    """A :class:`~sluice.workflow.StepContext` as the runtime would pass to ``step``.

    The event's deadline is ``budget_s`` seconds from now (on the ``time.time()`` clock, like
    the runtime's); ``attempt`` counts from 1. ``tenant`` defaults to ``default``, the tenant
    of an in-process ``runtime.submit``.
    """
    return StepContext(
        event_id=event_id,
        workflow=workflow,
        version=version,
        tenant=tenant,
        step=step,
        attempt=attempt,
        options={} if options is None else options,
        deadline=time.time() + budget_s,
        logger=logger or logging.getLogger("sluice.runtime"),
        services={} if services is None else services,
        flag=flag,
    )
