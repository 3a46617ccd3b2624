"""Built-in steps, named by ``uses:`` in workflow files.

Steps that need downstream clients (models, indexes) find them in ``ctx.services``; the
AI-specific built-ins register themselves from their own packages through
:func:`builtin_steps` so this module never imports them.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Mapping

from sluice.workflow.context import StepContext
from sluice.workflow.model import JSONObject, StepFn


async def noop(ctx: StepContext, data: JSONObject) -> JSONObject:
    """Pass the data on unchanged."""
    return data


async def sleep(ctx: StepContext, data: JSONObject) -> JSONObject:
    """Wait ``options.ms`` milliseconds, then pass the data on (load shaping and drills)."""
    await asyncio.sleep(float(ctx.options.get("ms", 0)) / 1000)
    return data


async def pick(ctx: StepContext, data: JSONObject) -> JSONObject:
    """Keep only the fields listed in ``options.fields``."""
    fields = ctx.options.get("fields", [])
    return {k: data[k] for k in fields if k in data}


_CORE: Mapping[str, StepFn] = {"noop": noop, "sleep": sleep, "pick": pick}
# The built-in steps of sluice.steps: name -> "module:function", imported on first use (some
# pull optional, heavy packages: numpy, torch, model weights).
_LAZY: Mapping[str, str] = {
    "retrieve": "sluice.steps.retrieve:retrieve",
    "classify": "sluice.steps.classify:classify",
    "route": "sluice.steps.route:route",
    "deliver": "sluice.steps.deliver:deliver",
    "generate": "sluice.steps.generate:generate",
}


def builtin_steps() -> Mapping[str, StepFn | str]:
    """Every built-in step name, with its function or its import reference."""
    return {**_CORE, **_LAZY}


def resolve_builtin(name: str) -> StepFn | None:
    """Return the built-in step called ``name``, importing it if it lives elsewhere."""
    if name in _CORE:
        return _CORE[name]
    ref = _LAZY.get(name)
    if ref is None:
        return None
    module_name, _, attr = ref.partition(":")
    fn: StepFn = getattr(importlib.import_module(module_name), attr)
    return fn
