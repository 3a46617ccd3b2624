"""TestApp: an app started in process on a temporary store, driven over its HTTP API."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.config import load_settings
from sluice.testing import Reply, ScriptedModel, TestApp
from tests.conftest import MakeApp

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"

CONFIG = """
store: sqlite:///.sluice/label.db
pools:
  cpu: {concurrency: 4, queue_limit: 100}
runtime: {poll_ms: 20}
"""
WORKFLOW = """
name: label
input_schema:
  type: object
  required: [text]
  properties:
    text: {type: string, minLength: 1}
steps:
  - {name: label, pool: cpu, uses: "label_steps:label", retries: 2}
"""
STEPS = """
from sluice.models.base import ModelRequest


async def label(ctx, data):
    result = await ctx.service("classifier").predict(ModelRequest(text=data["text"]))
    return {"label": result.label, "attempt": ctx.attempt}
"""


class TestRuns:
    async def test_a_run_goes_the_whole_way_and_comes_back_done(self) -> None:
        """The hello example greets through its pools; the result is what a client reads."""
        async with TestApp(HELLO, tenant="acme") as app:
            run = await app.run("greet", {"name": "  ada   lovelace "})
        assert run["status"] == "done"
        assert run["result"] == {"greeting": "Hello, Ada Lovelace!", "tenant": "acme"}
        assert [s["step"] for s in run["steps"]] == ["normalise", "lookup", "greet"]

    async def test_the_http_client_sees_the_api_refusals(self) -> None:
        """Invalid input is refused before anything runs, a missing key is 401."""
        async with TestApp(HELLO) as app:
            bad = await app.http.post("/v1/workflows/greet/runs", json={}, headers=app.auth())
            anonymous = await app.http.post("/v1/workflows/greet/runs", json={"name": "x"})
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        assert anonymous.status_code == 401

    async def test_a_refused_submit_says_why(self) -> None:
        """submit wants a 202; anything else fails the test with the answer."""
        async with TestApp(HELLO) as app:
            with pytest.raises(AssertionError, match="answered 422"):
                await app.submit("greet", {"name": ""})

    async def test_tenants_see_only_their_own_runs(self) -> None:
        """Another tenant's key does not find the run; an idempotent resend is the same run."""
        async with TestApp(HELLO) as app:
            first = await app.submit("greet", {"name": "ada"}, idempotency_key="k1")
            again = await app.submit("greet", {"name": "ada"}, idempotency_key="k1")
            await app.wait(first)
            other = await app.http.get(f"/v1/runs/{first}", headers={
                "authorization": f"Bearer {await app.key('other')}"})  # fmt: skip
        assert again == first
        assert other.status_code == 404


class TestStore:
    async def test_the_store_is_temporary_and_removed_at_the_end(self) -> None:
        """The app's own store file is not touched; the temporary one goes with the app."""
        async with TestApp(load_settings(HELLO)) as app:
            await app.run("greet", {"name": "ada"})
            path = app.app.settings.sqlite_path()
            assert path.exists()
            assert HELLO not in path.parents
        assert not path.parent.exists()
        with pytest.raises(RuntimeError, match="not started"):
            _ = app.http


async def test_fakes_go_in_as_services(make_app: MakeApp) -> None:
    """A scripted model in place of a provider: its error is retried, its answer returned."""
    app_dir = make_app(CONFIG, {"label.yaml": WORKFLOW}, {"label_steps.py": STEPS})
    model = ScriptedModel("clf", [Reply(ConnectionError("reset")), "lost_card"])
    async with TestApp(app_dir, services={"classifier": model}) as app:
        run = await app.run("label", {"text": "I lost my card"})
    assert run["status"] == "done"
    assert run["result"] == {"label": "lost_card", "attempt": 2}
    assert [r.text for r in model.requests] == ["I lost my card"] * 2
    assert not (app_dir / ".sluice" / "label.db").exists()


def test_test_app_is_not_collected_as_a_test_class() -> None:
    """Importing TestApp into a test module must not make pytest try to collect it."""
    assert TestApp.__test__ is False
