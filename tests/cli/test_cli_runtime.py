"""The ``sluice`` command's runtime verbs, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import MakeApp

CONFIG = """
store: sqlite:///.sluice/cli.db
pools: {cpu: {concurrency: 2}}
"""
WORKFLOWS = {
    "upper.yaml": """
name: upper
input_schema: {type: object, required: [text]}
steps:
  - {name: up, pool: cpu, uses: "cli_steps:up"}
""",
    "picky.yaml": """
name: picky
steps:
  - {name: refuse, pool: cpu, uses: "cli_steps:refuse", retries: 0}
""",
}
STEPS = {
    "cli_steps.py": """
from sluice.errors import StepError

async def up(ctx, data):
    return {"text": data["text"].upper()}

async def refuse(ctx, data):
    raise StepError("no thanks", retryable=False)
"""
}


def sluice(
    *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "sluice", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        check=False,
    )


def test_run_prints_the_result(make_app: MakeApp, tmp_path: Path) -> None:
    """``sluice run`` runs one event and prints the finished run as JSON."""
    app = make_app(CONFIG, WORKFLOWS, STEPS)
    (tmp_path / "in.json").write_text('{"text": "hello"}')
    out = sluice("run", "upper", "--input", str(tmp_path / "in.json"), "--app", str(app))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"] == {"text": "HELLO"}


def test_dead_runs_are_listed_shown_and_replayable(make_app: MakeApp) -> None:
    """A failed run exits 1, shows up in ``runs list --state dead``, and can be replayed."""
    app = make_app(CONFIG, WORKFLOWS, STEPS)
    out = sluice("run", "picky", "--input", "-", "--app", str(app), stdin="{}")
    assert out.returncode == 1
    event_id = json.loads(out.stdout)["event_id"]
    listed = sluice("runs", "list", "--state", "dead", "--app", str(app))
    assert event_id in listed.stdout
    assert "no thanks (not retryable)" in listed.stdout
    shown = json.loads(sluice("runs", "show", event_id, "--app", str(app)).stdout)
    assert shown["status"] == "dead"
    replayed = sluice("runs", "replay", event_id, "--app", str(app))
    assert replayed.returncode == 0
    assert "requeued" in replayed.stdout
    assert event_id not in sluice("runs", "list", "--state", "dead", "--app", str(app)).stdout


def test_bad_workflow_file_is_a_clear_error(make_app: MakeApp, tmp_path: Path) -> None:
    """A broken workflow file stops the command with every problem and its path."""
    bad = {"bad.yaml": "name: bad\nsteps:\n  - {name: a, pool: gpu, uses: noop}\n"}
    app = make_app(CONFIG, bad)
    (tmp_path / "in.json").write_text("{}")
    out = sluice("run", "bad", "--input", str(tmp_path / "in.json"), "--app", str(app))
    assert out.returncode == 2
    assert "bad.yaml: steps[0].pool: unknown pool 'gpu' (known: cpu)" in out.stderr
    assert "Traceback" not in out.stderr


def test_show_lists_the_step_that_died(make_app: MakeApp) -> None:
    """``runs show`` of a dead run lists the steps that finished and the one that died, with
    its attempts and error; the error counts one attempt in the singular."""
    failing = """
name: failing
steps:
  - {name: up, pool: cpu, uses: "cli_steps:up"}
  - {name: boom, pool: cpu, uses: "cli_steps:boom", retries: 0}
"""
    steps = {"cli_steps.py": STEPS["cli_steps.py"] + """
async def boom(ctx, data):
    raise ValueError("broken")
"""}  # fmt: skip
    app = make_app(CONFIG, {"failing.yaml": failing}, steps)
    out = sluice("run", "failing", "--input", "-", "--app", str(app), stdin='{"text": "a"}')
    assert out.returncode == 1
    event_id = json.loads(out.stdout)["event_id"]
    shown = json.loads(sluice("runs", "show", event_id, "--app", str(app)).stdout)
    assert shown["status"] == "dead"
    assert shown["error"].endswith("(no retries left after 1 attempt)")
    done, died = shown["steps"]
    assert (done["step"], done["attempts"]) == ("up", 1)
    assert died == {"step": "boom", "status": "dead", "attempts": 1, "error": shown["error"]}
