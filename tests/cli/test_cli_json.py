"""``--json`` on the list and show commands: one JSON document, the same data as the table."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from sluice.cli.main import build_app
from tests.cli.test_cli_ingress import WORKFLOW, _config, _deliver
from tests.conftest import MakeApp


def sluice_json(*args: str) -> Any:
    """Run a command in this process with --json and parse its standard output."""
    result = CliRunner().invoke(build_app(), [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _app(make_app: MakeApp, tmp_path: Path) -> tuple[Path, list[str]]:
    """An app with two events quarantined by a wrong mapping and one run to the end."""
    app_dir = make_app(_config(), {"tickets.yaml": WORKFLOW})
    bodies = [orjson.dumps({"ticket": {"description": f"card lost {i}"}}) for i in range(2)]
    ids = asyncio.run(_deliver(app_dir, bodies))
    (tmp_path / "in.json").write_text('{"text": "hello"}')
    ran = CliRunner().invoke(
        build_app(), ["run", "tickets", "--input", str(tmp_path / "in.json"), "--app", str(app_dir)]
    )
    assert ran.exit_code == 0, ran.output
    return app_dir, [*ids, json.loads(ran.stdout)["event_id"]]


def test_quarantine_and_runs_as_json(make_app: MakeApp, tmp_path: Path) -> None:
    """quarantine list/show and runs list/show print JSON with stable keys."""
    app_dir, (q1, q2, event) = _app(make_app, tmp_path)
    app = ("--app", str(app_dir))
    listed = sluice_json("quarantine", "list", *app)
    assert {item["id"] for item in listed} == {q1, q2}
    assert all(list(item) == ["id", "source", "workflow", "tenant", "reason"] for item in listed)
    assert all("$.ticket.body not found" in item["reason"] for item in listed)
    assert sluice_json("quarantine", "show", q1, *app)["id"] == q1
    runs = sluice_json("runs", "list", *app)
    assert runs == [
        {"event_id": event, "workflow": "tickets", "version": "1", "status": "done", "error": None}
    ]
    assert sluice_json("runs", "show", event, *app)["event_id"] == event


def test_apikey_list_as_json(make_app: MakeApp) -> None:
    """apikey list --json lists each key's record, never the key itself."""
    app_dir = make_app(_config(), {"tickets.yaml": WORKFLOW})
    runner = CliRunner()
    created = runner.invoke(
        build_app(),
        ["apikey", "create", "--tenant", "acme", "--expires-in", "1d", "--app", str(app_dir)],
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    (key,) = sluice_json("apikey", "list", "--app", str(app_dir))
    assert key["tenant"] == "acme"
    assert key["roles"] == ["runner"]
    assert key["expired"] is False
    assert key["revoked_at"] is None
    assert key["expires_at"] > key["created_at"]
    assert secret not in json.dumps(key)


def test_an_empty_list_is_an_empty_json_list(make_app: MakeApp) -> None:
    """With nothing stored, the JSON is ``[]``, not an empty output."""
    app_dir = make_app(_config(), {"tickets.yaml": WORKFLOW})
    assert sluice_json("runs", "list", "--app", str(app_dir)) == []
    assert sluice_json("quarantine", "list", "--app", str(app_dir)) == []
    assert sluice_json("apikey", "list", "--app", str(app_dir)) == []
