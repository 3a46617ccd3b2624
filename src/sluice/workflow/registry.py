"""The workflows an app knows, by name and by (name, version)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

from sluice.errors import NotFoundError, WorkflowError
from sluice.workflow.loader import load_workflow_file
from sluice.workflow.model import Workflow


class WorkflowRegistry:
    """Holds loaded workflows. The newest registration of a name is its current version."""

    def __init__(self, workflows: Iterable[Workflow] = ()) -> None:
        self._current: dict[str, Workflow] = {}
        self._versions: dict[tuple[str, str], Workflow] = {}
        for wf in workflows:
            self.add(wf)

    def add(self, workflow: Workflow) -> None:
        """Register ``workflow`` and make it the current version of its name."""
        self._current[workflow.name] = workflow
        self._versions[(workflow.name, workflow.version)] = workflow

    def get(self, name: str, version: str | None = None) -> Workflow:
        """Return the named workflow (its current version unless ``version`` is given)."""
        wf = self._current.get(name) if version is None else self._versions.get((name, version))
        if wf is None:
            what = name if version is None else f"{name} version {version}"
            raise NotFoundError(f"unknown workflow {what!r}")
        return wf

    def __iter__(self) -> Iterator[Workflow]:
        return iter(self._current.values())

    def __len__(self) -> int:
        return len(self._current)

    def pools_fed_by(self) -> dict[str, set[str]]:
        """For each pool, the pools its steps hand work on to (for backpressure)."""
        feeds: dict[str, set[str]] = {}
        for wf in self._versions.values():
            for here, nxt in zip(wf.steps, wf.steps[1:], strict=False):
                if nxt.pool != here.pool:
                    feeds.setdefault(here.pool, set()).add(nxt.pool)
        return feeds

    @classmethod
    def from_directory(cls, directory: Path, pools: Collection[str]) -> WorkflowRegistry:
        """Load every ``*.yaml``/``*.yml`` file in ``directory``; all problems are reported."""
        if not directory.is_dir():
            raise WorkflowError(f"workflow directory {directory} does not exist")
        registry = cls()
        problems: list[str] = []
        for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
            try:
                wf = load_workflow_file(path, pools)
            except WorkflowError as exc:
                problems.extend(f"{path.name}: {p}" for p in exc.problems or [str(exc)])
                continue
            if wf.name in registry._current:
                problems.append(f"{path.name}: workflow name {wf.name!r} is defined twice")
            registry.add(wf)
        if problems:
            raise WorkflowError(f"invalid workflows in {directory}", problems)
        return registry
