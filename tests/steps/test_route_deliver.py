"""Built-in steps route and deliver through a real app, delivery to a real HTTP receiver."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.ingress.signatures import WebhookVerifier
from sluice.outbound.egress import allowed
from sluice.store.base import EventState
from sluice.testing.servers import AsgiServer
from tests.conftest import MakeApp

SECRET = "whsec_" + base64.b64encode(b"r" * 24).decode()
RULES = """
default: {team: general, priority: normal}
urgent: [lost_card]
teams:
  cards: [lost_card, card_arrival]
"""


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[int, list[dict[str, Any]], list[int]]]:
    """A real HTTP server that verifies signatures and records deliveries."""
    received: list[dict[str, Any]] = []
    answers: list[int] = []
    verifier = WebhookVerifier([SECRET])

    async def hook(request: Request) -> Response:
        body = await request.body()
        verifier.verify(request.headers, body)
        status = answers.pop(0) if answers else 200
        if status == 200:
            received.append({"id": request.headers["webhook-id"], **orjson.loads(body)})
        return Response(status_code=status)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with AsgiServer(app) as server:
        yield server.port, received, answers


def _app(make_app: MakeApp, port: int, allow: str) -> Path:
    config = f"""
    store: sqlite:///.sluice/steps.db
    outbound: {{allow_private: ["127.0.0.1/32"]}}  # local servers: allowed explicitly
    pools: {{post: {{concurrency: 4}}}}
    egress: {{allow: ["{allow}"]}}
    runtime: {{poll_ms: 20}}
    """
    workflow = f"""
    name: ship
    steps:
      - {{name: route, pool: post, uses: route, options: {{rules: rules.yaml}}}}
      - name: deliver
        pool: post
        uses: deliver
        retries: 2
        options: {{url: "http://127.0.0.1:{port}/hook", secret_env: SLUICE_HOOK_SECRET,
                   drop: [scratch]}}
    """
    app_dir = make_app(config, {"ship.yaml": workflow})
    (app_dir / "rules.yaml").write_text(RULES)
    return app_dir


async def test_route_then_signed_delivery(
    make_app: MakeApp, receiver: tuple[int, list[dict[str, Any]], list[int]]
) -> None:
    """The route is picked from the rules; the result is POSTed signed, once, after a 503."""
    port, received, answers = receiver
    answers.append(503)  # the receiver is briefly down: the runtime retries the step
    app_dir = _app(make_app, port, f"127.0.0.1:{port}")
    settings = load_settings(app_dir, environ={"SLUICE_HOOK_SECRET": SECRET})
    async with SluiceApp.from_settings(settings) as app:
        event_id = await app.runtime.submit("ship", {"intent": "lost_card", "scratch": "x"})
        record = await app.runtime.wait(event_id, 20)
    assert record.state is EventState.DONE, record.error
    result = orjson.loads(record.result or b"{}")
    assert result["route"] == {"team": "cards", "priority": "urgent", "queue": "cards:urgent"}
    assert "scratch" not in result
    (delivery,) = received
    assert delivery["id"] == f"{event_id}:deliver"
    assert delivery["result"]["route"]["team"] == "cards"
    assert record.steps[-1].attempts == 2


async def test_hosts_off_the_allowlist_are_refused(
    make_app: MakeApp, receiver: tuple[int, list[dict[str, Any]], list[int]]
) -> None:
    """A URL whose host is not allowed dead-letters the event without sending anything."""
    port, received, _ = receiver
    app_dir = _app(make_app, port, "hooks.example.com")
    settings = load_settings(app_dir, environ={"SLUICE_HOOK_SECRET": SECRET})
    async with SluiceApp.from_settings(settings) as app:
        record = await app.runtime.wait(await app.runtime.submit("ship", {"intent": "x"}), 10)
    assert record.state is EventState.DEAD
    assert "is not on the allowlist" in (record.error or "")
    assert received == []


def test_allowlist_matching() -> None:
    """Host or host:port entries; other schemes never pass."""
    assert allowed("https://hooks.example.com/x", {"hooks.example.com"})
    assert allowed("http://127.0.0.1:9000/x", {"127.0.0.1:9000"})
    assert not allowed("http://127.0.0.1:9001/x", {"127.0.0.1:9000"})
    assert not allowed("file:///etc/passwd", {"etc"})


async def test_bad_rules_file_is_a_clear_error(make_app: MakeApp, tmp_path: Path) -> None:
    """A rules file listing a label twice dead-letters with the problem named."""
    app_dir = _app(make_app, 1, "x")
    (app_dir / "rules.yaml").write_text("teams: {a: [x], b: [x]}\n")
    settings = load_settings(app_dir, environ={"SLUICE_HOOK_SECRET": SECRET})
    async with SluiceApp.from_settings(settings) as app:
        record = await app.runtime.wait(await app.runtime.submit("ship", {"intent": "x"}), 10)
    assert record.state is EventState.DEAD
    assert "teams.b: 'x' is already in 'a'" in (record.error or "")


async def test_a_failing_receiver_opens_its_breaker(
    make_app: MakeApp, receiver: tuple[int, list[dict[str, Any]], list[int]]
) -> None:
    """Two 500s open the receiver's breaker; later deliveries fail fast without a request."""
    port, received, answers = receiver
    answers.extend([500] * 10)
    app_dir = _app(make_app, port, f"127.0.0.1:{port}")
    config = app_dir / "sluice.yaml"
    config.write_text(
        config.read_text() + "reliability: {breaker: {failure_threshold: 2, open_s: 60}}\n"
    )
    flow = app_dir / "workflows" / "ship.yaml"
    flow.write_text("budget_ms: 3000\n" + flow.read_text())
    settings = load_settings(app_dir, environ={"SLUICE_HOOK_SECRET": SECRET})
    async with SluiceApp.from_settings(settings) as app:
        first = await app.runtime.wait(await app.runtime.submit("ship", {"intent": "x"}), 10)
        later = [
            await app.runtime.wait(await app.runtime.submit("ship", {"intent": "x"}), 10)
            for _ in range(3)
        ]
        (snapshot,) = app.services["breakers"].snapshot()
    assert first.state is EventState.DEAD
    assert all(r.state is EventState.DEAD for r in later)
    assert all("breaker" in (r.error or "") for r in later), [r.error for r in later]
    assert len(answers) == 8  # only the first event's two attempts reached the receiver
    assert received == []
    assert snapshot.name == "webhook:127.0.0.1"
    assert snapshot.state == "open"
