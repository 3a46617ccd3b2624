"""One triage event, followed from the webhook through every step to delivery in one trace.

The triage app is served for real (uvicorn on a free port), with its real models trained on a
small BANKING77 subset, and delivers to a real HTTP receiver. The ticket carries PII (an
e-mail, an IBAN, a phone number) and the caller sends a ``traceparent``. The trace must cover
ingress, acceptance, every step, the model call(s), the cache lookups and the outbound
delivery; its id is the correlation id; and no log line, stored span, ledger row or metric
holds the PII or the ticket's words.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.config import load_settings
from sluice.ingress.intake import Ingress
from sluice.ingress.settings import parse_ingress
from sluice.outbound.signing import decode_secret, sign
from sluice.store.base import EventState
from sluice.telemetry.logs import JsonFormatter
from sluice.testing import free_port
from sluice.testing.servers import AsgiServer
from tests.examples.test_triage import build_small_triage_app

HOOK_SECRET = "whsec_" + base64.b64encode(b"trace-e2e-source-secret!").decode()
OUT_SECRET = "whsec_" + base64.b64encode(b"trace-e2e-receiver-key!!").decode()
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
EMAIL, IBAN, PHONE = "jane.doe@example.com", "GB82WEST12345698765432", "+44 20 7946 0958"
WORDS = "my purple card vanished near the zoo gates"
TICKET = f"Hello, {WORDS}. Write to {EMAIL}, refund to IBAN {IBAN} or call {PHONE}."
SECRETS = (EMAIL, IBAN, PHONE, "7946 0958", WORDS, "purple card", "zoo gates")
STEPS = ("retrieve", "classify", "route", "draft", "deliver")

CONFIG = """
store: sqlite:///.sluice/trace.db
outbound: {allow_private: ["127.0.0.1/32"]}  # local servers: allowed explicitly
pools:
  retrieval: {concurrency: 4}
  inference: {concurrency: 4}
  post: {concurrency: 4}
models:
  small: {kind: tfidf, train: data/train.csv, price_per_call: 0.000002}
  large: {kind: stacked, train: data/train.csv, price_per_call: 0.0002}
model_groups: {drafter: []}  # the draft step's models: none, its local fallback drafts
indexes:
  tickets: {embedder: wordllama, data: data/train.csv, templates: kb/templates.yaml}
caches:
  responses: {max_entries: 1000, ttl_s: 600}
  retrieval: {max_entries: 1000, ttl_s: 60}
egress: {allow: ["127.0.0.1:RECEIVER"]}
telemetry: {flush_ms: 50}
sources:
  helpdesk:
    workflow: triage
    tenant: bank
    secrets: [HOOK_SECRET]
    mapping:
      text: $.ticket.description
      subject: {path: $.ticket.subject, default: ""}
"""


@pytest.fixture(scope="module")
def receiver_port() -> int:
    """The port the delivery receiver will listen on."""
    return free_port()


@pytest.fixture(scope="module")
def trace_app(tmp_path_factory: pytest.TempPathFactory, receiver_port: int) -> Path:
    """The triage app on small training data, delivering to the receiver's port."""
    config = CONFIG.replace("RECEIVER", str(receiver_port)).replace("HOOK_SECRET", HOOK_SECRET)
    return build_small_triage_app(
        tmp_path_factory.mktemp("trace-app"),
        config,
        lambda text: text.replace(
            "options: {drop: [neighbours]}",
            "options: {drop: [neighbours], secret_env: SLUICE_OUT_SECRET,"
            f' url: "http://127.0.0.1:{receiver_port}/hook"}}',
        ),
    )


@pytest.fixture
async def receiver(receiver_port: int) -> AsyncIterator[list[dict[str, str]]]:
    """A real HTTP server recording the headers of every delivery."""
    received: list[dict[str, str]] = []

    async def hook(request: Request) -> Response:
        await request.body()
        received.append(dict(request.headers))
        return Response(status_code=204)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with AsgiServer(app, port=receiver_port):
        yield received


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log record of the process, as the JSON lines the app would write."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
async def served(trace_app: Path) -> AsyncIterator[tuple[httpx.AsyncClient, SluiceApp]]:
    """The app behind uvicorn on a free port; its lifespan starts and stops the app."""
    for stale in (trace_app / ".sluice").glob("trace.db*"):
        stale.unlink()
    settings = load_settings(trace_app, environ={"SLUICE_OUT_SECRET": OUT_SECRET})
    app = SluiceApp.from_settings(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        create_http_app(app, Ingress(app, parse_ingress(settings))),
        host="127.0.0.1", port=port, log_level="warning"))  # fmt: skip
    task = asyncio.create_task(server.serve())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes no started event
            await asyncio.sleep(0.02)
        yield http, app
        server.should_exit = True
        await task


def _signed(body: bytes, msg_id: str) -> dict[str, str]:
    stamp = int(time.time())
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(decode_secret(HOOK_SECRET), msg_id, stamp, body),
        "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
    }


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s.lower() in text.lower()]


@pytest.mark.slow
async def test_one_event_is_one_trace_without_pii(
    served: tuple[httpx.AsyncClient, SluiceApp],
    receiver: list[dict[str, str]],
    captured_logs: io.StringIO,
    trace_app: Path,
) -> None:
    """Webhook -> accept -> every step -> model -> caches -> delivery: one trace, no PII."""
    http, app = served
    body = orjson.dumps({"ticket": {"description": TICKET, "subject": f"call {PHONE}"}})
    resp = await http.post("/v1/hooks/helpdesk", content=body, headers=_signed(body, "tr-1"))
    assert resp.status_code == 202
    assert resp.headers["x-correlation-id"] == CALLER_TRACE  # the trace id is the correlation id
    record = await app.runtime.wait(resp.json()["event_id"], 30)
    assert record.state is EventState.DONE, record.error
    assert await app.store.event_trace_id(record.id) == CALLER_TRACE
    await app.telemetry.flush()

    spans = await app.store.trace_spans(CALLER_TRACE)
    names = [s.name for s in spans]
    by_id = {s.span_id: s for s in spans}
    ingress = next(s for s in spans if s.kind == "server")
    assert ingress.name == "POST hooks"  # the route template, as the metrics label it
    assert ingress.parent_id == CALLER_SPAN  # the caller's span is the parent
    assert ingress.attributes["http.response.status_code"] == 202
    assert {s.parent_id for s in spans} - set(by_id) == {CALLER_SPAN}  # one connected tree
    assert f"accept {record.workflow}" in names
    for step in STEPS:
        (span,) = [s for s in spans if s.name == f"step {step}"]
        assert span.attributes["sluice.outcome"] == "ok"
        assert span.attributes["sluice.attempt"] == 1
        assert span.event_id == record.id
    models = [s for s in spans if s.attributes.get("gen_ai.operation.name")]
    assert models
    assert models[0].name == "classification small"
    assert models[0].attributes["gen_ai.provider.name"] == "sluice.local"
    assert models[0].attributes["gen_ai.request.model"] == "small"
    assert "sluice.cost" in models[0].attributes
    assert models[0].parent_id is not None
    assert by_id[models[0].parent_id].name == "step classify"
    lookups = {s.name: s for s in spans if s.name.startswith("cache.lookup")}
    assert set(lookups) == {"cache.lookup response", "cache.lookup retrieval"}
    assert all(s.attributes["sluice.cache.hit"] is False for s in lookups.values())
    (outbound,) = [s for s in spans if s.kind == "client" and s.name == "POST"]
    assert outbound.parent_id is not None
    assert by_id[outbound.parent_id].name == "step deliver"
    (delivery,) = receiver
    assert delivery["traceparent"] == f"00-{CALLER_TRACE}-{outbound.span_id}-01"

    # Nothing of the ticket anywhere telemetry goes.
    stored = orjson.dumps([[s.name, s.attributes, s.event_id] for s in spans]).decode()
    assert _leaks(stored) == []
    db = sqlite3.connect(trace_app / ".sluice" / "trace.db")
    try:
        ledger = db.execute("SELECT * FROM costs").fetchall()
        every_span = db.execute("SELECT name, attributes FROM spans").fetchall()
    finally:
        db.close()
    assert [row[7] for row in ledger] == [m.attributes["gen_ai.request.model"] for m in models]
    assert ledger[0][2] == record.id
    assert ledger[0][3] == CALLER_TRACE
    assert _leaks(repr(ledger)) == []
    assert _leaks(repr(every_span)) == []
    assert _leaks((await http.get("/metrics")).text) == []
    logged = captured_logs.getvalue()
    assert _leaks(logged) == []
    lines = [orjson.loads(line) for line in logged.splitlines()]
    accepted = [
        e for e in lines if e.get("event_id") == record.id and e["logger"] == "sluice.ingress"
    ]
    assert accepted
    assert accepted[0]["trace_id"] == CALLER_TRACE


async def test_problem_documents_carry_the_trace_id(
    served: tuple[httpx.AsyncClient, SluiceApp],
) -> None:
    """A refusal's problem document repeats the trace id the response header gives."""
    http, _ = served
    body = b'{"ticket": {}}'
    headers = {**_signed(body, "tr-2"), "webhook-signature": "v1,AAAA"}
    headers["traceparent"] = f"00-{'a' * 32}-{'b' * 16}-01"
    resp = await http.post("/v1/hooks/helpdesk", content=body, headers=headers)
    assert resp.status_code == 401
    assert resp.headers["x-correlation-id"] == "a" * 32
    assert resp.json()["correlation_id"] == "a" * 32
    fresh = await http.post("/v1/hooks/helpdesk", content=body, headers={"content-type": "x/y"})
    cid = fresh.headers["x-correlation-id"]
    assert len(cid) == 32
    assert cid != "a" * 32
    assert fresh.json()["correlation_id"] == cid
