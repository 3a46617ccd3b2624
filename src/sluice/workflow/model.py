"""Workflows and steps: the objects the YAML loader produces and the Python API builds.

A workflow is an ordered list of steps. Each step runs in a named pool, within a time budget,
and is retried up to ``retries`` times while the workflow's overall budget allows::

    from sluice.workflow import Step, Workflow

    async def shout(ctx, data):
        return {"text": data["text"].upper()}

    wf = Workflow(name="shout", version="1", steps=(Step(name="shout", pool="cpu", fn=shout),))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sluice.errors import WorkflowError
from sluice.workflow.context import StepContext

JSONObject = dict[str, Any]
StepFn = Callable[[StepContext, JSONObject], Awaitable[JSONObject]]

DEFAULT_STEP_BUDGET_MS = 10_000
DEFAULT_WORKFLOW_BUDGET_MS = 60_000
DEFAULT_RETRIES = 3


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a workflow: ``fn`` runs in ``pool`` within ``budget_ms``."""

    name: str
    pool: str
    fn: StepFn
    uses: str = ""
    budget_ms: int = DEFAULT_STEP_BUDGET_MS
    retries: int = DEFAULT_RETRIES
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Workflow:
    """A named, versioned, ordered list of steps with an input schema and an overall budget."""

    name: str
    version: str
    steps: tuple[Step, ...]
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    budget_ms: int = DEFAULT_WORKFLOW_BUDGET_MS
    description: str = ""
    # Sections the runtime core does not interpret (sources, slo, ...), kept for their owners.
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if not self.steps:
            problems.append("steps: a workflow needs at least one step")
        names = [s.name for s in self.steps]
        for i, name in enumerate(names):
            if name in names[:i]:
                problems.append(f"steps[{i}].name: duplicate step name {name!r}")
        if problems:
            raise WorkflowError(f"invalid workflow {self.name!r}", problems)

    @property
    def first_pool(self) -> str:
        """The pool of the first step: where admission control looks."""
        return self.steps[0].pool
