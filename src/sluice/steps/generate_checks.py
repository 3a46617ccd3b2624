"""Load-time checks of ``generate`` steps (:mod:`sluice.steps.generate`): every problem of
every step's options, named by workflow file and path, before the app serves anything."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sluice.errors import ConfigError
from sluice.prompts import PromptSet
from sluice.steps.tools import resolve_function, resolve_tool
from sluice.workflow.model import Workflow

_OPTION_KEYS = frozenset(
    {"template", "model", "inputs", "params", "cache", "tools", "max_repairs"}
    | {"max_tool_rounds", "degrade_to", "fallback"}
)
#: The keys of an input that looks its value up in an app file.
LOOKUP_KEYS = frozenset({"file", "key", "default"})


def check_generate_steps(
    workflows: Sequence[Workflow],
    prompts: PromptSet | None,
    models: Sequence[str],
    *,
    groups: Mapping[str, Sequence[str]] | None = None,
    files: Mapping[str, str] | None = None,
    search_path: Path | None = None,
    app_dir: Path | None = None,
) -> None:
    """Every ``generate`` step's options: a known template, known models or model groups
    (``groups``, the ``model_groups:`` section), inputs naming the template's variables (and
    every required one; a lookup's file in ``app_dir``), declared tools, an importable
    fallback (required when a group may leave the step without a model). Raises one
    :class:`ConfigError` with every problem as ``FILE: steps[i].options.KEY: reason``."""
    problems: list[str] = []
    context = _Context(models, groups or {}, search_path, app_dir)
    for workflow in workflows:
        where = (files or {}).get(workflow.name, f"workflow {workflow.name!r}")
        for index, step in enumerate(workflow.steps):
            if step.uses != "generate":
                continue
            prefix = f"{where}: steps[{index}].options"
            problems += [f"{prefix}{p}" for p in _step_problems(step.options, prompts, context)]
    if problems:
        raise ConfigError("generate steps cannot be used", problems)


class _Context:
    """What a step's options are checked against."""

    def __init__(
        self,
        models: Sequence[str],
        groups: Mapping[str, Sequence[str]],
        search_path: Path | None,
        app_dir: Path | None,
    ) -> None:
        self.models = list(models)
        self.groups = groups
        self.search_path = search_path
        self.app_dir = app_dir

    def known(self) -> str:
        """The models and groups a step may name, for messages."""
        names = [*sorted(self.models), *(f"group {g}" for g in sorted(self.groups))]
        return ", ".join(names) or "none"


def _step_problems(
    options: Mapping[str, Any], prompts: PromptSet | None, context: _Context
) -> list[str]:
    models = context.models
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
    asked: list[str] = []  # the models the names resolve to, groups expanded
    if raw_model is None and template is not None:
        problems.append(".model: required: the template names no model")
    elif listed is not None and (not isinstance(listed, list) or not listed):
        problems.append(".model: a model or model group name, or a list of them tried in order")
    elif listed is not None:
        for position, model in enumerate(listed):
            at = ".model" if isinstance(raw_model, str) else f".model[{position}]"
            if isinstance(model, str) and model in context.groups:
                asked += context.groups[model]
            elif model in models:
                asked.append(model)
            else:
                problems.append(f"{at}: {model!r} is not a model of the models: section nor a"
                                f" group of model_groups: (known: {context.known()})")  # fmt: skip
        if not asked and not problems and options.get("fallback") is None:
            problems.append(f".model: {raw_model!r} names only empty model groups: set a"
                            " fallback for when no model is configured")  # fmt: skip
    fallback = options.get("fallback")
    if fallback is not None:
        if not isinstance(fallback, str):
            problems.append(".fallback: a 'module:function' of the app")
        else:
            _, found = resolve_function(fallback, context.search_path)
            problems += [f".fallback: {p}" for p in found]
    problems += _input_problems(options.get("inputs"), template, context.app_dir)
    degrade_to = options.get("degrade_to")
    if degrade_to is not None and degrade_to not in models:
        problems.append(f".degrade_to: {degrade_to!r} is not a model of the models: section")
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
                _, found = resolve_tool(spec, context.search_path)
                problems += [f".tools[{position}].{p}" for p in found]
    return problems


def _input_problems(inputs: Any, template: Any, app_dir: Path | None) -> list[str]:
    """``options.inputs``: each variable a data path, or a lookup ``{file, key, default}``."""
    if inputs is None:
        return []
    if not isinstance(inputs, Mapping):
        return [".inputs: a mapping of template variables to data paths or file lookups"]
    problems: list[str] = []
    for variable, source in inputs.items():
        at = f".inputs.{variable}"
        if isinstance(source, Mapping):
            problems += [f"{at}.{key}: unknown key (a lookup has file, key, default)"
                         for key in sorted(set(source) - LOOKUP_KEYS)]  # fmt: skip
            if not isinstance(source.get("key"), str) or not source["key"]:
                problems.append(f"{at}.key: required, the data path whose value is looked up")
            problems += [f"{at}.file: {p}" for p in _lookup_file_problems(source.get("file"),
                                                                          app_dir)]  # fmt: skip
        elif not isinstance(source, str) or not source:
            problems.append(f"{at}: a data path, or a lookup {{file, key, default}}")
        if template is not None and variable not in template.variables:
            known = ", ".join(template.variables)
            problems.append(f"{at}: template {template.name!r} declares no variable"
                            f" {variable!r} (declared: {known})")  # fmt: skip
    if template is not None:
        for variable, spec in template.variables.items():
            if spec.required and variable not in inputs:
                problems.append(f".inputs: required variable {variable!r} of template"
                                f" {template.name!r} is not mapped")  # fmt: skip
    return problems


def _lookup_file_problems(name: Any, app_dir: Path | None) -> list[str]:
    """A lookup's file: a YAML mapping inside the app directory."""
    if not isinstance(name, str) or not name:
        return ["required, a YAML file of the app (a mapping), relative to the app directory"]
    if app_dir is None:
        return []
    root = app_dir.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        return [f"{name!r} is outside the app directory"]
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return [f"{name!r} cannot be read: {type(exc).__name__}"]
    if not isinstance(raw, Mapping):
        return [f"{name!r}: the top level must be a mapping"]
    return []


def workflow_files(folder: Path | None, app_dir: Path) -> dict[str, str]:
    """Workflow name -> its file, relative to the app (for load-time problems)."""
    found: dict[str, str] = {}
    if folder is None or not folder.is_dir():
        return found
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            try:
                shown = str(path.relative_to(app_dir))
            except ValueError:
                shown = str(path)
            found.setdefault(raw["name"], shown)
    return found
