"""The runs API over the in-process ASGI client: accept, wait, read back, refuse clearly."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.ingress.http import MAX_BODY_BYTES, create_http_app
from tests.conftest import MakeApp

CONFIG = """
store: sqlite:///.sluice/http.db
pools:
  cpu: {concurrency: 4, queue_limit: 3}
runtime: {poll_ms: 20}
"""
WORKFLOW = """
name: echo
input_schema:
  type: object
  required: [text]
  properties: {text: {type: string}}
steps:
  - {name: pick, pool: cpu, uses: pick, options: {fields: [text]}}
"""


@pytest.fixture
async def client(make_app: MakeApp) -> AsyncIterator[tuple[httpx.AsyncClient, SluiceApp]]:
    """An HTTP client bound to a started app."""
    app = SluiceApp.from_settings(load_settings(make_app(CONFIG, {"echo.yaml": WORKFLOW})))
    await app.start()
    transport = httpx.ASGITransport(app=create_http_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http, app
    await app.stop()


async def test_accept_then_read_back(client: tuple[httpx.AsyncClient, SluiceApp]) -> None:
    """202 with an event id and a Location; the run reads back done with its result."""
    http, app = client
    resp = await http.post("/v1/workflows/echo/runs", json={"text": "hi", "extra": 1})
    assert resp.status_code == 202
    event_id = resp.json()["event_id"]
    assert resp.headers["location"] == f"/v1/runs/{event_id}"
    await app.runtime.wait(event_id, 5)
    run = (await http.get(f"/v1/runs/{event_id}")).json()
    assert run["status"] == "done"
    assert run["result"] == {"text": "hi"}
    assert [s["step"] for s in run["steps"]] == ["pick"]


async def test_wait_returns_the_result(client: tuple[httpx.AsyncClient, SluiceApp]) -> None:
    """``?wait=`` answers 200 with the finished run."""
    http, _ = client
    resp = await http.post("/v1/workflows/echo/runs?wait=5", json={"text": "sync"})
    assert resp.status_code == 200
    assert resp.json()["result"] == {"text": "sync"}


@pytest.mark.parametrize(
    ("kwargs", "status", "kind"),
    [
        ({"json": {"text": 3}}, 422, "invalid-input"),
        ({"content": b"{nope", "headers": {"content-type": "application/json"}}, 400,
         "malformed-json"),
        ({"content": b"text=hi", "headers": {"content-type": "text/plain"}}, 415,
         "unsupported-media-type"),
        ({"content": b"[" * (MAX_BODY_BYTES + 1), "headers": {"content-type": "application/json"}},
         413, "payload-too-large"),
    ],
)  # fmt: skip
async def test_refusals_are_problem_documents(
    client: tuple[httpx.AsyncClient, SluiceApp], kwargs: dict[str, object], status: int, kind: str
) -> None:
    """Each refusal has its status and a problem+json body with a stable type."""
    http, _ = client
    resp = await http.post("/v1/workflows/echo/runs", **kwargs)  # type: ignore[arg-type]
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["type"].endswith("/" + kind)


async def test_unknown_workflow_and_run(client: tuple[httpx.AsyncClient, SluiceApp]) -> None:
    """Unknown names are 404 problems."""
    http, _ = client
    assert (await http.post("/v1/workflows/nope/runs", json={})).status_code == 404
    assert (await http.get("/v1/runs/nope")).status_code == 404


async def test_full_queue_is_503_with_retry_after(
    client: tuple[httpx.AsyncClient, SluiceApp],
) -> None:
    """With the first pool's queue at its limit, new runs get 503 and Retry-After."""
    http, app = client
    await app.runtime.stop()  # no workers: the queue only fills
    codes = [
        (await http.post("/v1/workflows/echo/runs", json={"text": str(i)})).status_code
        for i in range(4)
    ]
    assert codes == [202, 202, 202, 503]
    resp = await http.post("/v1/workflows/echo/runs", json={"text": "x"})
    assert int(resp.headers["retry-after"]) >= 1


async def test_health(client: tuple[httpx.AsyncClient, SluiceApp]) -> None:
    """healthz is always ok; readyz reports the pools once started."""
    http, _ = client
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = (await http.get("/readyz")).json()
    assert ready["pools"]["cpu"]["concurrency"] == 4
