"""Load-time checks of ``classify`` steps (:mod:`sluice.steps.classify`): what would otherwise
fail only when the first ticket arrives, named by workflow file and path, with what to add."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sluice.errors import ConfigError
from sluice.workflow.model import Workflow


def check_classify_steps(
    workflows: Sequence[Workflow], models: Any, *, files: Mapping[str, str] | None = None
) -> None:
    """Every tier of every ``classify`` step names a model of the ``models:`` section, and a
    remote chat model (``kind: openai``) among them has the labels it must choose from.

    Raises one :class:`ConfigError` with every problem as ``FILE: steps[i].options...``.
    """
    entries: Mapping[str, Any] = models if isinstance(models, Mapping) else {}
    problems: list[str] = []
    for workflow in workflows:
        where = (files or {}).get(workflow.name, f"workflow {workflow.name!r}")
        for index, step in enumerate(workflow.steps):
            tiers = step.options.get("cascade")
            if step.uses != "classify" or not isinstance(tiers, list):
                continue
            for number, tier in enumerate(tiers):
                path = f"{where}: steps[{index}].options.cascade[{number}].model"
                name = tier.get("model") if isinstance(tier, Mapping) else None
                if not isinstance(name, str) or name not in entries:
                    known = ", ".join(sorted(entries)) or "none"
                    problems.append(f"{path}: {name!r} is not a model of models: (known: {known})")
                    continue
                entry = entries[name]
                remote = isinstance(entry, Mapping) and entry.get("kind") == "openai"
                if remote and not entry.get("labels"):
                    problems.append(
                        f"{path}: {name!r} is a chat model with no labels to choose from:"
                        f" add models.{name}.labels (a list, or a CSV whose label or"
                        " category column lists them, e.g. data/train.csv)"
                    )
    if problems:
        raise ConfigError("invalid classify steps", problems)
