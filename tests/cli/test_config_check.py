"""``sluice config check``: every problem of an app with its path, without starting it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sluice.cli.main import build_app
from tests.conftest import MakeApp

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFIG = """
store: sqlite:///.sluice/check.db
pools: {cpu: {concurrency: 2}}
"""
WORKFLOW = """
name: echo
steps:
  - {name: one, pool: cpu, uses: "cli_check_steps:one"}
"""
STEPS = {"cli_check_steps.py": "async def one(ctx, data):\n    return data\n"}


def check(*args: str) -> tuple[int, str]:
    """Run ``sluice config check ARGS`` in this process: exit code and standard output."""
    result = CliRunner().invoke(build_app(), ["config", "check", *args])
    return result.exit_code, result.stdout


def test_a_good_app_prints_one_line(make_app: MakeApp) -> None:
    """A valid app exits 0 with a one-line summary."""
    app = make_app(CONFIG, {"echo.yaml": WORKFLOW}, STEPS)
    code, out = check(str(app))
    assert code == 0
    assert out.strip().splitlines() == [f"{app}: ok (2 sections, 1 workflows)"]


@pytest.mark.parametrize(
    ("example", "section"), [("hello", "pools"), ("triage", "models"), ("gateway", "gateway")]
)
def test_the_example_apps_are_valid(example: str, section: str) -> None:
    """Each example app (models, indexes, caches, spend, sources, the AI gateway) passes
    every check."""
    code, out = check(str(EXAMPLES / example), "--json")
    report = json.loads(out)
    assert (code, report["ok"], report["problems"]) == (0, True, [])
    assert section in report["sections"]


def test_every_problem_is_printed_with_its_path(tmp_path: Path) -> None:
    """Misspelled sections in sluice.yaml each get a line naming the file and a suggestion."""
    app = tmp_path / "triage"
    shutil.copytree(EXAMPLES / "triage", app, ignore=shutil.ignore_patterns(".sluice"))
    config = app / "sluice.yaml"
    text = config.read_text()
    for right, wrong in [("spend:", "spnd:"), ("rate_limits:", "rate_limit:")]:
        text = text.replace(f"\n{right}", f"\n{wrong}")
    config.write_text(text)
    code, out = check(str(app))
    assert code == 1
    assert out.splitlines() == [
        "sluice.yaml: rate_limit: unknown section (did you mean rate_limits?)",
        "sluice.yaml: spnd: unknown section (did you mean spend?)",
    ]


def test_the_rest_is_checked_past_an_unknown_section(make_app: MakeApp) -> None:
    """An unknown section does not hide the problems of the known ones and the workflows."""
    config = CONFIG + "cache: {}\ncaches: {responses: {colour: red}}\n"
    app = make_app(config, {"echo.yaml": WORKFLOW.replace("pool: cpu", "pool: gpu")}, STEPS)
    code, out = check(str(app))
    lines = out.splitlines()
    assert code == 1
    assert lines[:2] == [
        "sluice.yaml: cache: unknown section (did you mean caches?)",
        "sluice.yaml: caches.responses.colour: unknown field",
    ]
    assert len(lines) == 3
    assert lines[2].startswith("workflows/echo.yaml: steps[0].pool: unknown pool 'gpu'")


def test_section_and_workflow_problems_come_together(make_app: MakeApp) -> None:
    """Problems found by each section's parser and by the workflow loader are all listed,
    as JSON with --json."""
    config = CONFIG + "caches: {responses: {ttl_s: -1, colour: red}}\n"
    broken = WORKFLOW.replace("pool: cpu", "pool: gpu")
    app = make_app(config, {"echo.yaml": broken}, STEPS)
    code, out = check(str(app), "--json")
    report = json.loads(out)
    assert code == 1
    assert report["ok"] is False
    problems = report["problems"]
    assert "sluice.yaml: caches.responses.colour: unknown field" in problems
    assert any(p.startswith("workflows/echo.yaml: ") and "gpu" in p for p in problems)


def test_a_missing_app_directory_is_a_problem(tmp_path: Path) -> None:
    """Checking a directory that does not exist fails with exit 1 and says why."""
    code, out = check(str(tmp_path / "nowhere"), "--json")
    assert code == 1
    assert "does not exist" in json.loads(out)["problems"][0]
