"""Load workflow YAML files, reporting every problem with its path.

A workflow file::

    name: echo
    version: 1
    budget_ms: 30000              # the whole event's time budget
    input_schema: {type: object, required: [text], properties: {text: {type: string}}}
    steps:
      - name: clean
        pool: cpu
        uses: noop                # a built-in step, or "package.module:function"
        budget_ms: 1000
        retries: 2
        options: {}               # free per-step options, handed to the step as ctx.options

Loading validates the shape against :data:`WORKFLOW_FILE_SCHEMA`, then the meaning: pools
exist, ``uses`` resolves to an ``async def``, ``input_schema`` is a valid JSON Schema.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from sluice.errors import WorkflowError
from sluice.workflow.builtins import resolve_builtin
from sluice.workflow.model import (
    DEFAULT_RETRIES,
    DEFAULT_STEP_BUDGET_MS,
    DEFAULT_WORKFLOW_BUDGET_MS,
    Step,
    StepFn,
    Workflow,
)

_NAME = {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_.-]{0,63}$"}
_POSITIVE = {"type": "integer", "minimum": 1}

WORKFLOW_FILE_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": ["name", "steps"],
    "additionalProperties": True,  # extra sections (sources, slo, ...) belong to other parts
    "properties": {
        "name": _NAME,
        "version": {"type": ["string", "integer"]},
        "description": {"type": "string"},
        "budget_ms": _POSITIVE,
        "input_schema": {"type": "object"},
        "steps": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "pool", "uses"],
                "additionalProperties": False,
                "properties": {
                    "name": _NAME,
                    "pool": {"type": "string"},
                    "uses": {"type": "string", "minLength": 1},
                    "budget_ms": _POSITIVE,
                    "retries": {"type": "integer", "minimum": 0, "maximum": 100},
                    "options": {"type": "object"},
                },
            },
        },
    },
}
_KNOWN_TOP = set(WORKFLOW_FILE_SCHEMA["properties"])
# Top-level sections other subsystems read; anything else is a typo worth reporting.
OWNED_SECTIONS = frozenset({"sources", "slo", "budgets", "pii", "cache", "release"})


def format_path(parts: Iterable[Any]) -> str:
    """Render a JSON path as ``steps[2].pool``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def _resolve_uses(uses: str, search_path: Path | None) -> tuple[StepFn | None, str | None]:
    """Resolve ``uses`` to a step function, or explain why it cannot be."""
    if ":" not in uses:
        fn = resolve_builtin(uses)
        return (fn, None) if fn else (None, f"unknown built-in step {uses!r}")
    module_name, _, attr = uses.partition(":")
    if search_path is not None and str(search_path) not in sys.path:
        # Step modules live beside the workflow files; make them importable explicitly.
        sys.path.insert(0, str(search_path))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to see
        return None, f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
    fn = getattr(module, attr, None)
    if fn is None:
        return None, f"module {module_name!r} has no attribute {attr!r}"
    if not inspect.iscoroutinefunction(fn):
        return None, f"{uses!r} is not an 'async def' function"
    return fn, None


def parse_workflow(
    raw: Any, pools: Collection[str], search_path: Path | None = None, source: str = "workflow"
) -> Workflow:
    """Validate a parsed workflow mapping and build a :class:`Workflow`.

    ``pools`` are the pool names the app declares. Raises :class:`WorkflowError` listing every
    problem with its path.
    """
    validator = jsonschema.Draft202012Validator(WORKFLOW_FILE_SCHEMA)
    problems = [
        f"{format_path(err.absolute_path)}: {err.message}"
        for err in sorted(validator.iter_errors(raw), key=lambda e: list(map(str, e.path)))
    ]
    if problems or not isinstance(raw, Mapping):
        raise WorkflowError(f"invalid workflow in {source}", problems or ["(top): not a mapping"])
    for key in raw:
        if key not in _KNOWN_TOP and key not in OWNED_SECTIONS:
            problems.append(f"{key}: unknown section")
    schema = raw.get("input_schema", {"type": "object"})
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        problems.append(f"input_schema.{format_path(exc.absolute_path)}: {exc.message}")
    steps: list[Step] = []
    seen: set[str] = set()
    for i, spec in enumerate(raw["steps"]):
        if spec["name"] in seen:
            problems.append(f"steps[{i}].name: duplicate step name {spec['name']!r}")
        seen.add(spec["name"])
        if spec["pool"] not in pools:
            known = ", ".join(sorted(pools)) or "none declared"
            problems.append(f"steps[{i}].pool: unknown pool {spec['pool']!r} (known: {known})")
        fn, why = _resolve_uses(spec["uses"], search_path)
        if why:
            problems.append(f"steps[{i}].uses: {why}")
        if fn is not None:
            steps.append(
                Step(
                    name=spec["name"],
                    pool=spec["pool"],
                    fn=fn,
                    uses=spec["uses"],
                    budget_ms=spec.get("budget_ms", DEFAULT_STEP_BUDGET_MS),
                    retries=spec.get("retries", DEFAULT_RETRIES),
                    options=spec.get("options", {}),
                )
            )
    if problems:
        raise WorkflowError(f"invalid workflow in {source}", problems)
    return Workflow(
        name=raw["name"],
        version=str(raw.get("version", "1")),
        steps=tuple(steps),
        input_schema=schema,
        budget_ms=raw.get("budget_ms", DEFAULT_WORKFLOW_BUDGET_MS),
        description=raw.get("description", ""),
        extra={k: v for k, v in raw.items() if k in OWNED_SECTIONS},
    )


def load_workflow_file(path: Path, pools: Collection[str]) -> Workflow:
    """Load and validate one workflow YAML file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise WorkflowError(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise WorkflowError(f"{path}: not valid YAML: {exc}") from exc
    return parse_workflow(raw, pools, search_path=path.parent, source=str(path))
