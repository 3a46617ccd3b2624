"""``sluice audit``: changes made through the command line are listed, exported with their
signed checkpoints and public key, verified, and an edit behind the store's back is named."""

from __future__ import annotations

import sqlite3

import orjson
import pytest
from typer.testing import CliRunner

from sluice.cli.main import build_app
from sluice.governance import new_signing_key
from sluice.governance.signing import SIGNING_KEY_ENV, VERIFY_KEY_ENV
from tests.conftest import MakeApp
from tests.governance.matrix import CONFIG, WORKFLOW, empty_index


def test_list_export_verify_and_a_named_edit(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three audited changes, one export, a clean verify; then an edit fails verification
    with exit code 1 naming the entry, even for a verifier holding only the public key."""
    monkeypatch.setenv(SIGNING_KEY_ENV, new_signing_key())
    app_dir = make_app(CONFIG, {"tickets.yaml": WORKFLOW})
    empty_index(app_dir)
    cli, at = build_app(), ["--app", str(app_dir)]

    def run(*argv: str) -> str:
        result = CliRunner().invoke(cli, [*argv, *at])
        assert result.exit_code == 0, (argv, result.stderr)
        return result.stdout

    run("principal", "create", "ada", "--role", "operator", "--why", "on call")
    run("role", "grant", "ada", "viewer")
    run("apikey", "create", "--tenant", "acme", "--as", "local-admin")
    entries = orjson.loads(run("audit", "list", "--json"))
    assert [(e["seq"], e["actor"], e["action"], e["resource"], e["why"]) for e in entries] == [
        (1, "local-admin", "principal.create", "principal/ada", "on call"),
        (2, "local-admin", "role.grant", "principal/ada", ""),
        (3, "local-admin", "apikey.create", "apikey/acme", ""),
    ]
    assert entries[1]["before"] == entries[0]["after"]  # the digest of ada as created
    lines = [orjson.loads(line) for line in run("audit", "export").splitlines()]
    assert [next(iter(line)) for line in lines] == [
        "entry", "entry", "entry", "checkpoint", "checkpoint", "checkpoint", "verify_key"
    ]  # fmt: skip
    public = lines[-1]["verify_key"]
    assert orjson.loads(run("audit", "verify", "--json"))["ok"] is True
    assert run("audit", "verify").startswith("ok: 3 entries, 3 checkpoints")

    with sqlite3.connect(app_dir / ".sluice" / "governance.db") as conn:
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    monkeypatch.delenv(SIGNING_KEY_ENV)
    monkeypatch.setenv(VERIFY_KEY_ENV, public)
    result = CliRunner().invoke(cli, ["audit", "verify", *at])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: entry 2: entry 2 was edited: its content does not match its hash"
    )
