"""Workflow files: valid ones load, invalid ones report every problem with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.errors import WorkflowError
from sluice.workflow import Step, Workflow, WorkflowRegistry, parse_workflow
from sluice.workflow.builtins import noop

POOLS = {"cpu", "io"}


def _wf(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "demo",
        "version": 2,
        "steps": [
            {"name": "a", "pool": "cpu", "uses": "noop"},
            {"name": "b", "pool": "io", "uses": "sleep", "budget_ms": 50, "options": {"ms": 1}},
        ],
    }
    base.update(over)
    return base


class TestValid:
    def test_loads_steps_in_order_with_defaults(self) -> None:
        """Steps keep their order, options, budgets; version becomes a string."""
        wf = parse_workflow(_wf(), POOLS)
        assert [s.name for s in wf.steps] == ["a", "b"]
        assert wf.version == "2"
        assert wf.steps[0].budget_ms == 10_000
        assert wf.steps[0].retries == 3
        assert wf.steps[1].options == {"ms": 1}
        assert wf.first_pool == "cpu"

    def test_python_api_builds_the_same_thing(self) -> None:
        """A workflow defined in code has the same shape as one from YAML."""
        wf = Workflow(name="demo", version="1", steps=(Step(name="a", pool="cpu", fn=noop),))
        assert wf.steps[0].fn is noop

    def test_module_function_steps_resolve(self, tmp_path: Path) -> None:
        """``uses: module:function`` imports from beside the workflow file."""
        (tmp_path / "mysteps_loader.py").write_text("async def go(ctx, data):\n    return data\n")
        raw = _wf(steps=[{"name": "a", "pool": "cpu", "uses": "mysteps_loader:go"}])
        wf = parse_workflow(raw, POOLS, search_path=tmp_path)
        assert wf.steps[0].fn.__name__ == "go"


class TestInvalid:
    def test_every_problem_is_reported_with_its_path(self) -> None:
        """Unknown pool, unknown built-in and bad budget are all listed at once."""
        raw = _wf(
            steps=[
                {"name": "a", "pool": "cpu", "uses": "noop"},
                {"name": "b", "pool": "cpu", "uses": "nope"},
                {"name": "c", "pool": "gpu", "uses": "noop"},
            ]
        )
        with pytest.raises(WorkflowError) as info:
            parse_workflow(raw, POOLS)
        assert "steps[2].pool: unknown pool 'gpu' (known: cpu, io)" in info.value.problems
        assert "steps[1].uses: unknown built-in step 'nope'" in info.value.problems

    def test_shape_errors_have_paths(self) -> None:
        """Schema-level errors name the field: negative budget, unknown key, missing pool."""
        raw = _wf(steps=[{"name": "a", "uses": "noop", "budget_ms": -5, "colour": "red"}])
        with pytest.raises(WorkflowError) as info:
            parse_workflow(raw, POOLS)
        text = "\n".join(info.value.problems)
        assert "steps[0].budget_ms: -5 is less than the minimum of 1" in text
        assert "steps[0]: 'pool' is a required property" in text
        assert "'colour' was unexpected" in text

    def test_duplicate_step_names(self) -> None:
        """Two steps with one name are refused."""
        raw = _wf(steps=[{"name": "a", "pool": "cpu", "uses": "noop"}] * 2)
        with pytest.raises(WorkflowError, match=r"steps\[1\].name: duplicate step name 'a'"):
            parse_workflow(raw, POOLS)

    def test_bad_input_schema(self) -> None:
        """An input_schema that is not a valid JSON Schema is reported."""
        with pytest.raises(WorkflowError, match="input_schema"):
            parse_workflow(_wf(input_schema={"type": "banana"}), POOLS)

    def test_sync_function_is_refused(self, tmp_path: Path) -> None:
        """A step must be ``async def``."""
        (tmp_path / "syncsteps_loader.py").write_text("def go(ctx, data):\n    return data\n")
        raw = _wf(steps=[{"name": "a", "pool": "cpu", "uses": "syncsteps_loader:go"}])
        with pytest.raises(WorkflowError, match="is not an 'async def' function"):
            parse_workflow(raw, POOLS, search_path=tmp_path)

    def test_import_errors_are_explained(self, tmp_path: Path) -> None:
        """A module that fails to import says why."""
        raw = _wf(steps=[{"name": "a", "pool": "cpu", "uses": "no_such_module_x:go"}])
        with pytest.raises(WorkflowError, match="cannot import 'no_such_module_x'"):
            parse_workflow(raw, POOLS, search_path=tmp_path)

    def test_unknown_top_level_section(self) -> None:
        """A typo in a section name is reported rather than ignored."""
        with pytest.raises(WorkflowError, match="stepz: unknown section"):
            parse_workflow(_wf(stepz=[]), POOLS)

    def test_directory_reports_problems_per_file(self, tmp_path: Path) -> None:
        """Loading a directory names the file of each problem and keeps going."""
        (tmp_path / "a.yaml").write_text("name: a\nsteps: [{name: s, pool: gpu, uses: noop}]\n")
        (tmp_path / "b.yaml").write_text("name: [unclosed\n")
        with pytest.raises(WorkflowError) as info:
            WorkflowRegistry.from_directory(tmp_path, POOLS)
        text = str(info.value)
        assert "a.yaml: steps[0].pool: unknown pool 'gpu'" in text
        assert "b.yaml" in text
