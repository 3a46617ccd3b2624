"""Tools a ``generate`` step lets its model call: Python functions of the app, each with a JSON
Schema for its arguments.

A tool is an ``async def`` (or plain) function taking the step context and the arguments as a
mapping, returning anything JSON can hold::

    from sluice.steps.tools import tool

    @tool({"type": "object", "required": ["card_id"],
           "properties": {"card_id": {"type": "string"}}},
          description="Where a customer's card is in delivery.")
    async def card_status(ctx, arguments):
        return {"status": "shipped", "card": arguments["card_id"]}

and is named in the step's options as ``module:function`` (the module beside the workflow
files, like custom steps), or as ``{function: module:function, parameters: {...},
description: ...}`` for a function without the decorator.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import jsonschema

#: The attribute :func:`tool` sets on a function: its parameters schema and description.
TOOL_ATTRIBUTE = "__sluice_tool__"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI accepts as a function name

F = TypeVar("F", bound=Callable[..., Any])


def tool(parameters: Mapping[str, Any], *, description: str = "") -> Callable[[F], F]:
    """Declare a function as a tool with the JSON Schema of its arguments."""
    jsonschema.Draft202012Validator.check_schema(parameters)

    def mark(fn: F) -> F:
        setattr(fn, TOOL_ATTRIBUTE, {"parameters": dict(parameters), "description": description})
        return fn

    return mark


@dataclass(frozen=True, slots=True)
class Tool:
    """One callable tool: its name as the model sees it, the function and its schema."""

    name: str
    ref: str
    fn: Callable[..., Any]
    parameters: Mapping[str, Any]
    description: str = ""

    def declaration(self) -> dict[str, Any]:
        """The tool in OpenAI's ``tools`` shape."""
        function: dict[str, Any] = {"name": self.name, "parameters": dict(self.parameters)}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    def problems(self, arguments: Any) -> list[str]:
        """Why ``arguments`` do not fit the schema (paths and rules, never values)."""
        from sluice.workflow.input_errors import schema_problems

        validator = jsonschema.Draft202012Validator(self.parameters)
        return schema_problems(validator.iter_errors(arguments), limit=10)

    async def call(self, ctx: Any, arguments: Mapping[str, Any]) -> Any:
        """Run the function (awaited when it is a coroutine function)."""
        result = self.fn(ctx, arguments)
        if inspect.isawaitable(result):
            result = await result
        return result


def resolve_function(
    ref: str, search_path: Path | None = None
) -> tuple[Callable[..., Any] | None, list[str]]:
    """The function ``module:function`` names (the module beside the workflow files, like
    custom steps), or why it cannot be had."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        return None, [f"{ref!r} is not 'module:function'"]
    if search_path is not None and str(search_path) not in sys.path:
        sys.path.insert(0, str(search_path))  # app functions live beside the workflows
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to see
        return None, [f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"]
    fn = getattr(module, attr, None)
    if not callable(fn):
        return None, [f"module {module_name!r} has no function {attr!r}"]
    return fn, []


def resolve_tool(spec: Any, search_path: Path | None = None) -> tuple[Tool | None, list[str]]:
    """The tool ``spec`` names (``module:function`` or a mapping), or the problems with it
    (each relative to the spec's own path)."""
    if isinstance(spec, str):
        ref, declared = spec, None
    elif isinstance(spec, Mapping) and isinstance(spec.get("function"), str):
        ref, declared = str(spec["function"]), spec
    else:
        return None, ["(tool): a 'module:function' string, or a mapping with 'function'"]
    fn, problems = resolve_function(ref, search_path)
    if fn is None:
        return None, [f"(tool): {problem}" for problem in problems]
    attr = ref.partition(":")[2]
    marked: Mapping[str, Any] = getattr(fn, TOOL_ATTRIBUTE, {})
    parameters = (declared or {}).get("parameters", marked.get("parameters"))
    description = (declared or {}).get("description", marked.get("description", ""))
    if not isinstance(parameters, Mapping):
        return None, [
            f"(tool): {ref!r} declares no JSON Schema for its arguments: decorate it with"
            " sluice.steps.tools.tool or give 'parameters'"
        ]
    try:
        jsonschema.Draft202012Validator.check_schema(parameters)
    except jsonschema.SchemaError as exc:
        return None, [f"parameters: not a valid JSON Schema: {exc.message}"]
    name = str((declared or {}).get("name", attr))
    if not _NAME.match(name):
        return None, [f"name: {name!r}: letters, digits, '_' and '-' only, at most 64"]
    return Tool(name, ref, fn, dict(parameters), str(description or "")), []
