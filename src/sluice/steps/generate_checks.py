"""Load-time checks of ``generate`` steps (:mod:`sluice.steps.generate`): every problem of
every step's options, named by workflow file and path, before the app serves anything."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sluice.errors import ConfigError
from sluice.prompts import PromptSet
from sluice.steps.tools import resolve_tool
from sluice.workflow.model import Workflow

_OPTION_KEYS = frozenset(
    {"template", "model", "inputs", "params", "cache", "tools", "max_repairs"}
    | {"max_tool_rounds", "degrade_to"}
)


def check_generate_steps(
    workflows: Sequence[Workflow],
    prompts: PromptSet | None,
    models: Sequence[str],
    *,
    files: Mapping[str, str] | None = None,
    search_path: Path | None = None,
) -> None:
    """Every ``generate`` step's options: a known template, known models, inputs naming the
    template's variables (and every required one), declared tools. Raises one
    :class:`ConfigError` with every problem as ``FILE: steps[i].options.KEY: reason``."""
    problems: list[str] = []
    for workflow in workflows:
        where = (files or {}).get(workflow.name, f"workflow {workflow.name!r}")
        for index, step in enumerate(workflow.steps):
            if step.uses != "generate":
                continue
            prefix = f"{where}: steps[{index}].options"
            problems += [f"{prefix}{p}" for p in _step_problems(step.options, prompts, models,
                                                                  search_path)]  # fmt: skip
    if problems:
        raise ConfigError("generate steps cannot be used", problems)


def _step_problems(
    options: Mapping[str, Any],
    prompts: PromptSet | None,
    models: Sequence[str],
    search_path: Path | None,
) -> list[str]:
    problems = [f".{key}: unknown option" for key in sorted(set(options) - _OPTION_KEYS)]
    name = options.get("template")
    template = None
    if not isinstance(name, str) or not name:
        problems.append(".template: required, a template of prompts/ (name or name@version)")
    elif "@" in name and (prompts is None or prompts.get(name) is None):
        pass  # a version the files no longer hold: read from the store when the step runs
    elif prompts is None:
        problems.append(f".template: {name!r}: the app has no prompts/ folder")
    else:
        template = prompts.get(name)
        if template is None:
            known = ", ".join(sorted(prompts)) or "none"
            problems.append(f".template: unknown template {name!r} (known: {known})")
    raw_model = options.get("model", template.model if template is not None else None)
    listed = [raw_model] if isinstance(raw_model, str) else raw_model
    if raw_model is None and template is not None:
        problems.append(".model: required: the template names no model")
    elif listed is not None and (not isinstance(listed, list) or not listed):
        problems.append(".model: a model name, or a list of them tried in order")
    elif listed is not None:
        for position, model in enumerate(listed):
            if model not in models:
                known = ", ".join(sorted(models)) or "none"
                at = ".model" if isinstance(raw_model, str) else f".model[{position}]"
                problems.append(f"{at}: {model!r} is not a model of the models: section"
                                f" (known: {known})")  # fmt: skip
    degrade_to = options.get("degrade_to")
    if degrade_to is not None and degrade_to not in models:
        problems.append(f".degrade_to: {degrade_to!r} is not a model of the models: section")
    inputs = options.get("inputs")
    if inputs is not None:
        if not isinstance(inputs, Mapping) or not all(
            isinstance(v, str) and v for v in inputs.values()
        ):
            problems.append(".inputs: a mapping of template variables to data fields")
        elif template is not None:
            for variable in inputs:
                if variable not in template.variables:
                    known = ", ".join(template.variables)
                    problems.append(f".inputs.{variable}: template {template.name!r} declares"
                                    f" no variable {variable!r} (declared: {known})")  # fmt: skip
            for variable, spec in template.variables.items():
                if spec.required and variable not in inputs:
                    problems.append(f".inputs: required variable {variable!r} of template"
                                    f" {template.name!r} is not mapped")  # fmt: skip
    for key, floor in (("max_repairs", 0), ("max_tool_rounds", 1)):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < floor):  # fmt: skip
            problems.append(f".{key}: an integer >= {floor}")
    if "cache" in options and not isinstance(options["cache"], bool):
        problems.append(".cache: true or false")
    if "params" in options and not isinstance(options["params"], Mapping):
        problems.append(".params: a mapping of generation parameters")
    tools = options.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            problems.append(".tools: a list of 'module:function' tools")
        else:
            for position, spec in enumerate(tools):
                _, found = resolve_tool(spec, search_path)
                problems += [f".tools[{position}].{p}" for p in found]
    return problems
