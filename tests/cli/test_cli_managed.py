"""``sluice secret|template|routing`` on a real store: values only from stdin or a file, never
printed; a principal acting with the viewer role cannot change anything (exit 3, nothing
written, nothing audited); changes are audited under the acting name."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

from sluice.app import build_store
from sluice.cli.main import build_app
from sluice.config import load_settings
from sluice.governance import create_principal
from sluice.guard.crypto import new_key
from sluice.store.base import Store
from tests.conftest import MakeApp

VALUE = "xoxb-2Kq81fZtP0aLmN"
WORKFLOW = """
    name: noop
    version: 1
    steps:
      - {name: keep, pool: cpu, uses: noop}
"""
TEMPLATE = """
system: You greet people.
user: "Say hello to {{ name }}."
variables:
  name: {type: string}
"""


@pytest.fixture
def app_dir(make_app: MakeApp) -> Path:
    """An app with a prompts/ folder on a fresh SQLite store."""
    app = make_app("pools: {cpu: {concurrency: 1}}\n", {"noop.yaml": WORKFLOW})
    (app / "prompts").mkdir()
    (app / "prompts" / "greet.yaml").write_text(TEMPLATE)
    return app


@pytest.fixture
def env() -> dict[str, str]:
    """An encryption keyring in the environment."""
    return {"SLUICE_ENCRYPTION_KEYS": f"k1={new_key()}", "SLUICE_ENCRYPTION_ACTIVE": "k1",
            "SLUICE_AS": ""}  # fmt: skip


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    clean = {k: v for k, v in env.items() if v}
    runner = CliRunner()
    return runner.invoke(build_app(), list(args), input=stdin, env={**os.environ, **clean})


def _store(app_dir: Path, env: dict[str, str], fn: Any) -> Any:
    async def go() -> Any:
        store: Store = build_store(load_settings(app_dir, {**os.environ, **env}))
        await store.open()
        try:
            return await fn(store)
        finally:
            await store.aclose()

    return asyncio.run(go())


def test_set_reads_stdin_or_a_file_and_never_prints(app_dir: Path, env: dict[str, str]) -> None:
    """stdin (one trailing newline dropped) and --from-file make versions 1 and 2; list and
    show print metadata only; a value on the command line is refused by the parser."""
    app = str(app_dir)
    first = _cli(env, "secret", "set", "slack", "--app", app, "--why", "onboarding",
                 stdin=VALUE + "\n")  # fmt: skip
    assert first.exit_code == 0, first.output
    path = app_dir.parent / "value.txt"
    path.write_text(VALUE + "-2")
    second = _cli(env, "secret", "set", "slack", "--from-file", str(path), "--app", app)
    assert second.exit_code == 0, second.output
    on_argv = _cli(env, "secret", "set", "slack", VALUE, "--app", app)
    assert on_argv.exit_code == 2
    listed = _cli(env, "secret", "list", "--app", app, "--json")
    shown = _cli(env, "secret", "show", "slack", "--app", app)
    for result in (first, second, on_argv, listed, shown):
        assert VALUE not in result.output
    (entry,) = orjson.loads(listed.output)
    assert (entry["name"], entry["latest"], entry["updated_by"]) == ("slack", 2, "local-admin")
    assert "v1" in shown.output
    assert "v2" in shown.output

    async def read(store: Store) -> list[str]:
        from sluice.app import encryption_codec
        from sluice.governance.secrets import Secrets
        from sluice.guard.crypto import AesGcmCodec

        codec = encryption_codec(load_settings(app_dir, {**os.environ, **env}))
        assert isinstance(codec, AesGcmCodec)
        secrets = Secrets(store, codec)
        return [(await secrets.get("slack", v)).reveal() for v in (1, 2)]

    assert _store(app_dir, env, read) == [VALUE, VALUE + "-2"]


def test_a_viewer_cannot_change_anything(app_dir: Path, env: dict[str, str]) -> None:
    """--as a viewer: set, delete, rotate, push and routing set exit 3 naming the permission;
    the store holds no secret, template or rules and the audit trail no entry; reads pass."""
    _store(app_dir, env, lambda s: create_principal(s, "vera", roles=["viewer"]))
    rules = app_dir.parent / "rules.yaml"
    rules.write_text("tenants: {acme: {models: [small]}}\n")
    app = str(app_dir)
    refused = [
        _cli(env, "secret", "set", "slack", "--app", app, "--as", "vera", stdin=VALUE),
        _cli(env, "secret", "delete", "slack", "--app", app, "--as", "vera"),
        _cli(env, "secret", "rotate", "--app", app, "--as", "vera"),
        _cli(env, "template", "push", app, "--as", "vera"),
        _cli(env, "routing", "set", str(rules), "--app", app, "--as", "vera"),
    ]
    for result in refused:
        assert result.exit_code == 3, result.output
        assert "'vera' lacks the permission" in result.output
    assert _cli(env, "secret", "list", "--app", app, "--as", "vera").exit_code == 0
    assert _cli(env, "routing", "show", "--app", app, "--as", "vera").exit_code == 0

    async def state(store: Store) -> tuple[Any, ...]:
        return (await store.secret_versions(), await store.list_templates(),
                await store.get_routing(), await store.audit_entries())  # fmt: skip

    assert _store(app_dir, env, state) == ([], [], None, [])


def test_templates_push_list_show_diff(app_dir: Path, env: dict[str, str]) -> None:
    """push is idempotent and audited per new version; diff exits 1 on a difference."""
    app = str(app_dir)
    first = _cli(env, "template", "push", app, "--json")
    again = _cli(env, "template", "push", app, "--json")
    assert [p["added"] for p in orjson.loads(first.output)] == [True]
    assert [p["added"] for p in orjson.loads(again.output)] == [False]
    (app_dir / "prompts" / "greet.yaml").write_text(TEMPLATE.replace("hello", "hi"))
    third = _cli(env, "template", "push", app, "--json")
    a, b = orjson.loads(first.output)[0]["id"], orjson.loads(third.output)[0]["id"]
    listed = orjson.loads(_cli(env, "template", "list", "greet", "--app", app, "--json").output)
    assert [t["id"] for t in listed] == [a, b]
    shown = _cli(env, "template", "show", a, "--app", app, "--json")
    assert orjson.loads(shown.output)["source"] == TEMPLATE
    diff = _cli(env, "template", "diff", a, b, "--app", app)
    assert diff.exit_code == 1
    assert '+user: "Say hi to {{ name }}."' in diff.output
    assert _cli(env, "template", "diff", a, a, "--app", app).exit_code == 0
    entries = _store(app_dir, env, lambda s: s.audit_entries())
    assert [(e.action, e.resource) for e in entries] == [
        ("template.push", f"template/{a}"), ("template.push", f"template/{b}"),
    ]  # fmt: skip


def test_routing_set_show_and_bad_files(app_dir: Path, env: dict[str, str]) -> None:
    """A rules file becomes version 1; a bad one is refused naming the file and each path;
    a rule naming a workflow the app lacks is set with a warning."""
    app = str(app_dir)
    rules = app_dir.parent / "rules.yaml"
    rules.write_text("workflows: {noop: {providers: [local]}, nope: {models: [x]}}\n")
    done = _cli(env, "routing", "set", str(rules), "--app", app, "--why", "lock down")
    assert done.exit_code == 0, done.output
    assert "warning: routing.workflows.nope: no workflow 'nope' in this app" in done.output
    shown = orjson.loads(_cli(env, "routing", "show", "--app", app, "--json").output)
    assert shown["version"] == 1
    assert shown["rules"]["workflows"]["noop"] == {"providers": ["local"]}
    rules.write_text("tenants: {acme: {models: small}}\nusers: {}\n")
    bad = _cli(env, "routing", "set", str(rules), "--app", app)
    assert bad.exit_code == 2
    assert f"{rules}: invalid routing rules" in bad.output
    assert "routing.tenants.acme.models: must be a list of names" in bad.output
    assert "routing.users: unknown section" in bad.output
    (entry,) = _store(app_dir, env, lambda s: s.audit_entries())
    assert (entry.action, entry.actor, entry.why) == ("routing.set", "local-admin", "lock down")


def test_config_check_names_malformed_references(app_dir: Path, env: dict[str, str]) -> None:
    """A reference that cannot name a secret is a problem with its path; a valid one (set or
    not: the store says at load) is none."""
    config = app_dir / "sluice.yaml"
    config.write_text(config.read_text() + 'alerts: {webhook: "${secret:bad name}"}\n'
                      'telemetry: {service_name: "${secret:fine}"}\n')  # fmt: skip
    report = orjson.loads(_cli(env, "config", "check", str(app_dir), "--json").output)
    shown = [p for p in report["problems"] if "secret" in p]
    assert shown == [
        "sluice.yaml: alerts.webhook: ${secret:bad name}: a secret name must match"
        " [A-Za-z][A-Za-z0-9_.-]{0,127}"
    ]


def test_encryption_rotate_rewraps_secrets(app_dir: Path, env: dict[str, str]) -> None:
    """``sluice encryption rotate`` re-wraps the secrets' data keys too (audited), so the old
    key can leave the keyring and every version still reads."""
    app = str(app_dir)
    assert _cli(env, "secret", "set", "slack", "--app", app, stdin=VALUE).exit_code == 0
    old = env["SLUICE_ENCRYPTION_KEYS"]
    new = f"k2={new_key()}"
    both = {**env, "SLUICE_ENCRYPTION_KEYS": f"{old} {new}", "SLUICE_ENCRYPTION_ACTIVE": "k2"}
    rotated = _cli(both, "encryption", "rotate", "--app", app)
    assert rotated.exit_code == 0, rotated.output
    assert "re-wrapped 1 secret data keys" in rotated.output
    only_new = {**env, "SLUICE_ENCRYPTION_KEYS": new, "SLUICE_ENCRYPTION_ACTIVE": "k2"}
    shown = orjson.loads(_cli(only_new, "secret", "show", "slack", "--app", app, "--json").output)
    assert [v["key_id"] for v in shown["versions"]] == ["k2"]

    async def read(store: Store) -> str:
        from sluice.governance.secrets import Secrets
        from sluice.guard.crypto import AesGcmCodec, Keyring

        codec = AesGcmCodec(Keyring.from_base64({"k2": new.split("=", 1)[1]}, "k2"))
        return (await Secrets(store, codec).get("slack")).reveal()

    assert _store(app_dir, only_new, read) == VALUE
    entries = _store(app_dir, only_new, lambda s: s.audit_entries())
    assert [(e.action, e.why) for e in entries][-1] == ("secret.rotate", "sluice encryption rotate")
