"""``sluice release create|list|show|diff`` on a copy of the triage app, through the real
command and the app's own SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from sluice.cli.main import build_app


def sluice(*args: str, code: int = 0) -> str:
    """Run ``sluice ARGS`` in this process; check the exit code and return standard output."""
    result = CliRunner().invoke(build_app(), list(args))
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else result.stderr


def sluice_json(*args: str) -> Any:
    return json.loads(sluice(*args, "--json"))


def test_create_list_show_and_diff(app: Path) -> None:
    """Two releases of a tuned threshold: created once each, listed newest first, shown with
    what they pin, and the diff names the threshold and the workflow file."""
    first = sluice_json("release", "create", str(app), "--workflow", "triage", "--note", "base")
    assert first["created"] is True
    assert first["note"] == "base"
    again = sluice_json("release", "create", str(app), "--workflow", "triage", "--note", "other")
    assert again == first | {"created": False}  # idempotent: the stored note and time stand
    workflow = app / "workflows" / "triage.yaml"
    workflow.write_text(workflow.read_text().replace("threshold: 0.7904", "threshold: 0.75"))
    second = sluice_json("release", "create", str(app), "-w", "triage")
    assert second["id"] != first["id"]

    listed = sluice_json("release", "list", "--app", str(app))
    assert [r["id"] for r in listed] == [second["id"], first["id"]]
    assert sluice_json("release", "list", "--workflow", "greet", "--app", str(app)) == []
    table = sluice("release", "list", "--app", str(app))
    assert first["id"] in table
    assert "base" in table

    shown = sluice_json("release", "show", first["id"], "--app", str(app))
    assert shown["manifest"]["thresholds"]["classify"][0] == {"model": "small", "threshold": 0.7904}
    text = sluice("release", "show", second["id"], "--app", str(app))
    assert '"threshold":0.75' in text
    assert "routing.yaml" in text
    step_lines = [line.split(":")[0].strip() for line in text.splitlines() if '"uses"' in line]
    assert step_lines == ["retrieve", "classify", "route", "draft", "deliver"]

    changes = sluice_json("release", "diff", first["id"], second["id"], "--app", str(app))
    assert [(c["section"], c["key"]) for c in changes["changes"]] == [
        ("workflow", "digest"),
        ("thresholds", "classify"),
    ]
    assert changes["changes"][1]["before"][0]["threshold"] == 0.7904
    assert changes["changes"][1]["after"][0]["threshold"] == 0.75
    text = sluice("release", "diff", first["id"], second["id"], "--app", str(app))
    assert "changed  thresholds.classify:" in text


def test_errors_are_one_line_on_stderr(app: Path) -> None:
    """An unknown workflow, a missing artifact and an unknown id: exit 2, one clear line."""
    err = sluice("release", "create", str(app), "--workflow", "nope", code=2)
    assert err.startswith("error: unknown workflow 'nope'")
    for artifact in (app / ".sluice" / "models").iterdir():
        if artifact.name.startswith("large-"):
            (artifact / "meta.json").unlink()
    err = sluice("release", "create", str(app), "--workflow", "triage", code=2)
    assert "model 'large': missing artifact" in err
    err = sluice("release", "show", "r_0000000000000000", "--app", str(app), code=2)
    assert err.strip() == "error: no release 'r_0000000000000000'"
    assert sluice_json("release", "list", "--app", str(app)) == []
