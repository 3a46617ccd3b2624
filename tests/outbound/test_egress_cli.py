"""``sluice egress check``: the runtime's answer, from the command line."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import orjson
from typer.testing import CliRunner

from sluice.app import SluiceApp
from sluice.cli.main import build_app
from sluice.config import AppSettings, load_settings
from sluice.store.base import EventRecord, EventState
from tests.conftest import MakeApp

SECRET = "whsec_" + base64.b64encode(b"r" * 24).decode()
METADATA = "http://169.254.169.254/latest/meta-data/"


def _app(make_app: MakeApp, url: str) -> Path:
    config = """
    store: sqlite:///.sluice/egress.db
    pools: {post: {concurrency: 2}}
    runtime: {poll_ms: 20}
    outbound:
      allow: ["127.0.0.1:9", "169.254.169.254"]
      allow_private: ["127.0.0.1/32"]
      tenants: {acme: {allow: ["127.0.0.1:7"]}}
    models:
      llm: {kind: openai, base_url: "http://127.0.0.1:8911/v1", labels: [a, b]}
    """
    workflow = f"""
    name: ship
    steps:
      - name: deliver
        pool: post
        uses: deliver
        options: {{url: "{url}", secret_env: SLUICE_HOOK_SECRET}}
    """
    return make_app(config, {"ship.yaml": workflow})


async def _one_event(settings: AppSettings) -> EventRecord:
    async with SluiceApp.from_settings(settings) as app:
        return await app.runtime.wait(await app.runtime.submit("ship", {"x": 1}), 10)


def _check(app_dir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(), ["egress", "check", *args, "--app", str(app_dir)])
    return result.exit_code, result.stdout, result.stderr


def test_the_command_and_the_runtime_give_the_same_refusal(make_app: MakeApp) -> None:
    """The metadata address, though on the allowlist, is refused by both with one reason."""
    app_dir = _app(make_app, METADATA)
    code, out, _ = _check(app_dir, METADATA, "--json")
    assert code == 1
    answer = orjson.loads(out)
    assert answer["allowed"] is False
    assert answer["reason"] == "169.254.169.254: link-local address (cloud metadata lives here)"
    settings = load_settings(app_dir, environ={"SLUICE_HOOK_SECRET": SECRET})
    # The command runs its own event loop: the app gets one of its own, after it.
    record = asyncio.run(_one_event(settings))
    assert record.state is EventState.DEAD
    assert answer["reason"] in (record.error or "")


def test_allowed_urls_tenants_and_configured_endpoints(make_app: MakeApp) -> None:
    """Allowed (exit 0) with the addresses; a tenant's hosts for that tenant only; a model's
    endpoint as its own client checks it."""
    app_dir = _app(make_app, METADATA)
    code, out, _ = _check(app_dir, "http://127.0.0.1:9/hook")
    assert code == 0
    assert out.strip() == (
        "allowed: 127.0.0.1:9 is on the allowlist; 127.0.0.1 allowed (outbound policy)"
    )
    assert _check(app_dir, "http://127.0.0.1:7/hook")[0] == 1
    code, out, _ = _check(app_dir, "http://127.0.0.1:7/hook", "--tenant", "acme")
    assert code == 0
    code, out, _ = _check(app_dir, "http://127.0.0.1:8911/v1/chat/completions", "--json")
    assert code == 0
    assert orjson.loads(out)["checked_as"] == "client of models.llm"
    code, out, _ = _check(app_dir, "http://0x7f.1:9/hook")
    assert code == 1
    assert out.startswith("denied: '0x7f.1' is a non-canonical IPv4 form (it reads as 127.0.0.1)")


def test_an_unusable_policy_is_one_error_line(make_app: MakeApp) -> None:
    """A bad outbound: section exits 2 with the problem and its path on stderr."""
    app_dir = make_app("outbound: {allow_private: [10.0.0.1/8]}\n", {})
    code, out, err = _check(app_dir, "http://example.com/")
    assert code == 2
    assert out == ""
    assert err.startswith("error: outbound: invalid egress policy")
    assert "outbound.allow_private[0]" in err
