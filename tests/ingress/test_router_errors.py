"""Router refusals in the API's shapes, no Host-reflecting redirect, client disconnects as 499."""

from __future__ import annotations

import logging
import textwrap
from typing import Any

import httpx
import orjson
import pytest
from starlette.types import ASGIApp, Message

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.config import load_settings
from sluice.ingress import intake
from sluice.ingress.apikeys import create_api_key
from sluice.ingress.settings import parse_ingress
from sluice.testing import free_port
from tests.conftest import MakeApp
from tests.ingress.conftest import Ingress


def _problem(resp: httpx.Response) -> dict[str, Any]:
    assert resp.headers["content-type"] == "application/problem+json"
    doc: dict[str, Any] = resp.json()
    assert doc["status"] == resp.status_code
    assert doc["correlation_id"] == resp.headers["x-correlation-id"]
    return doc


@pytest.mark.parametrize(
    "path", ["/nope", "/v1/runs", "/v1/hooks/", "//", "/v1/runs/a/b", "/%ff%00", "/v1/../x"]
)
async def test_unknown_routes_are_problem_documents(ingress: Ingress, path: str) -> None:
    """Unknown and malformed paths: 404 problem+json with the correlation id."""
    resp = await ingress.http.get(path)
    assert resp.status_code == 404
    assert _problem(resp)["type"].endswith("/not-found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", "/v1/hooks/helpdesk", "POST"), ("DELETE", "/v1/runs/x", "GET"),
     ("PUT", "/v1/workflows/tickets/runs", "POST"), ("POST", "/healthz", "GET")],
)  # fmt: skip
async def test_wrong_methods_are_405_with_allow(
    ingress: Ingress, method: str, path: str, allowed: str
) -> None:
    """A known route with a wrong method: 405, the Allow header, a problem document."""
    resp = await ingress.http.request(method, path)
    assert resp.status_code == 405
    assert allowed in resp.headers["allow"]
    assert allowed in _problem(resp)["detail"]


async def test_openai_paths_answer_openai_errors(ingress: Ingress) -> None:
    """Without a gateway section the AI gateway's paths are unknown, in the OpenAI shape."""
    for path in ("/v1/chat/completions", "/v1/models"):
        resp = await ingress.http.post(path, content=b"{}")
        assert resp.status_code == 404
        assert resp.headers["content-type"] == "application/json"
        assert resp.json()["error"]["type"] == "invalid_request_error"
        assert resp.headers["x-correlation-id"]


async def test_gateway_routes_refuse_wrong_methods_openai_shaped(make_app: MakeApp) -> None:
    """With the gateway configured, a wrong method on its routes is an OpenAI-shaped 405."""
    dead = free_port()  # no provider is called: the method is refused first
    config = f"""
    store: sqlite:///.sluice/gw.db
    pools: {{cpu: {{concurrency: 1}}}}
    gateway:
      models:
        chat: [{{name: p, base_url: "http://127.0.0.1:{dead}/v1", model: m}}]
    """
    workflow = "name: noop\nsteps: [{name: keep, pool: cpu, uses: noop}]\n"
    settings = load_settings(make_app(textwrap.dedent(config), {"noop.yaml": workflow}))
    app = SluiceApp.from_settings(settings)
    http_app = create_http_app(app, intake.Ingress(app, parse_ingress(settings)))
    async with (
        app,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=http_app), base_url="http://t") as c,
    ):
        for method, path, allowed in (("GET", "/v1/chat/completions", "POST"),
                                      ("DELETE", "/v1/models", "GET")):  # fmt: skip
            resp = await c.request(method, path)
            assert resp.status_code == 405
            assert allowed in resp.headers["allow"]
            error = resp.json()["error"]
            assert error["code"] == "method_not_allowed"
            assert resp.headers["x-correlation-id"]

        # A caller leaving mid-body: the chat route answers nobody, and it counts as 499.
        _, key = await create_api_key(app.store, "acme")
        bearer = (b"authorization", f"Bearer {key}".encode())
        sent = await _call(http_app, "/v1/chat/completions", [bearer])
        assert sent == []
        metrics = app.metrics.render().decode()
        assert 'sluice_http_requests_total{route="chat:completions",status="499"} 1.0' in metrics


async def _call(http_app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    """Call ``http_app`` directly with part of a JSON body, then a disconnect; what it sent."""
    incoming: list[Message] = [
        {"type": "http.request", "body": b'{"ticket": {"descr', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "server": ("t", 80), "client": ("127.0.0.1", 1),
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"400"),
                    *headers],
    }  # fmt: skip
    await http_app(scope, receive, send)
    return sent


async def test_trailing_slash_does_not_reflect_the_host(ingress: Ingress) -> None:
    """``/v1/status/`` used to redirect to ``http://<Host>/v1/status``; now it is not found."""
    resp = await ingress.http.get("/v1/status/", headers={**ingress.auth(), "host": "evil.example"})
    assert resp.status_code == 404
    assert "location" not in resp.headers
    assert "evil.example" not in resp.text
    _problem(resp)


async def test_client_leaving_mid_body_is_499_not_500(
    ingress: Ingress, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that disconnects mid-body: counted as 499, no ERROR log, no 500."""
    http_app = create_http_app(ingress.app, ingress.gateway)
    with caplog.at_level(logging.INFO):
        sent = await _call(http_app, "/v1/hooks/helpdesk", [])
    assert sent[0]["status"] == 499
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("client closed" in r.getMessage() for r in caplog.records)
    metrics = ingress.app.metrics.render().decode()
    assert 'sluice_http_requests_total{route="hooks",status="499"} 1.0' in metrics
    assert 'status="500"' not in metrics
    assert sent[1]["body"] == b""  # nobody reads it: no body


async def test_unexpected_webhook_error_is_a_500_document_and_raised(
    ingress: Ingress, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The webhook route skips Starlette's middleware: an unexpected error still answers the
    500 problem document (with the correlation id) and reaches the server's log."""

    async def broken(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ingress.gateway, "webhook", broken)
    http_app = create_http_app(ingress.app, ingress.gateway)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/hooks/helpdesk", "raw_path": b"/v1/hooks/helpdesk",
        "query_string": b"", "root_path": "", "server": ("t", 80), "client": ("127.0.0.1", 1),
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
    }  # fmt: skip
    with pytest.raises(RuntimeError, match="a bug"):
        await http_app(scope, receive, send)
    assert sent[0]["status"] == 500
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"application/problem+json"
    doc = orjson.loads(sent[1]["body"])
    assert doc["type"].endswith("internal")
    assert doc["correlation_id"] == headers[b"x-correlation-id"].decode()
    metrics = ingress.app.metrics.render().decode()
    assert 'sluice_http_requests_total{route="hooks",status="500"} 1.0' in metrics
