"""Hostile and malformed requests: never a 5xx, never a hang, nothing accepted and lost.

Every answer is checked against what the OpenAPI document says of its operation: a status
the operation documents, never a 500, a problem+json body on every refusal (OpenAI-shaped on
the AI gateway's routes), nothing stored for a refused request, the server alive afterwards.
Three sources of inputs: hypothesis strategies of our own (random JSON, random bytes, forged
headers), fixed hostile shapes (deep and wide JSON on every route, every route with every
method) through the in-process client, and schemathesis driving a real ``sluice serve``
from its OpenAPI document.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from starlette.routing import Route

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.config import load_settings
from sluice.drills.simulator import ModelSimulator
from sluice.drills.simulator_answerer import TfidfAnswerer
from sluice.drills.simulator_server import SimulatorServer
from sluice.ingress import intake
from sluice.ingress.apikeys import create_api_key
from sluice.ingress.settings import parse_ingress
from sluice.testing import free_port
from tests.conftest import MakeApp
from tests.ingress.conftest import CONFIG, WORKFLOW, Ingress

DATA = Path(__file__).resolve().parents[2] / "examples/triage/data/banking77/train.csv"
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=40,
)
HOOK = "/v1/hooks/helpdesk"
RUNS = "/v1/workflows/tickets/runs"
CHAT = "/v1/chat/completions"
AI_ROUTES = {CHAT, "/v1/models"}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# A concrete path for each templated route, to call it with.
CONCRETE = {"{event_id}": "ev_nope", "{source}": "helpdesk", "{name}": "tickets"}
GATEWAY = """
gateway:
  models:
    chat:
      - {{name: sim, base_url: "http://127.0.0.1:{port}/v1", model: sim-a, timeout_s: 5}}
  limits: {{default: {{requests_per_s: 100000, burst: 100000}}}}
"""


def documented(doc: dict[str, Any], path: str, method: str) -> set[int] | None:
    """The statuses the document gives the operation at ``path``, None if there is none."""
    for template, item in doc["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path) and method.lower() in item:
            return {int(code) for code in item[method.lower()]["responses"]}
    return None


def check_answer(doc: dict[str, Any], method: str, path: str, resp: httpx.Response) -> None:
    """No 500, a documented status, and a refusal body of the route's shape."""
    where = f"{method} {path} -> {resp.status_code}: {resp.text[:200]}"
    assert resp.status_code != 500, where
    statuses = documented(doc, path, "GET" if method == "HEAD" else method)  # Starlette's HEAD
    assert statuses is not None, f"{method} {path} is not in the OpenAPI document"
    assert resp.status_code in statuses, where
    if resp.status_code < 400 or method == "HEAD":
        return
    if path in AI_ROUTES:
        assert resp.headers["content-type"] == "application/json", where
        error = resp.json()["error"]
        assert {"message", "type", "code"} <= set(error), where
        assert error["message"], where
    else:
        assert resp.headers["content-type"] == "application/problem+json", where
        body = resp.json()
        assert {"type", "title", "status", "detail"} <= set(body), where
        assert body["status"] == resp.status_code, where


async def _check_accounting(ingress: Ingress, receipts: list[dict[str, Any]]) -> None:
    """Every 202 names an event or a quarantine entry that exists."""
    for receipt in receipts:
        if receipt["status"] == "quarantined":
            await ingress.app.store.get_quarantined(receipt["event_id"])
        else:
            await ingress.app.store.get_event(receipt["event_id"])


async def _stored(app: SluiceApp) -> tuple[int, int, int]:
    """Events, quarantine entries and idempotency keys in the store; keys are counted by
    purging them all, so call it last (or when the keys may go)."""
    events = len(await app.store.list_events())
    quarantined = len(await app.store.list_quarantine())
    return events, quarantined, await app.store.purge_idempotency(time.time() + 1)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=JSON, signed=st.booleans(), msg_id=st.text(min_size=1, max_size=20))
async def test_webhooks_survive_random_json(
    ingress: Ingress, payload: Any, signed: bool, msg_id: str
) -> None:
    """Random JSON, signed or not: a documented status, and 202s are all accounted for."""
    doc = (await ingress.http.get("/openapi.json")).json()
    body = orjson.dumps(payload)
    headers = ingress.signed(body, msg_id=msg_id.encode("ascii", "ignore").decode() or "m")
    if not signed:
        headers["webhook-signature"] = "v1,Zm9yZ2Vk"
    resp = await asyncio.wait_for(ingress.http.post(HOOK, content=body, headers=headers), 5)
    check_answer(doc, "POST", HOOK, resp)
    if resp.status_code == 202:
        await _check_accounting(ingress, [resp.json()])


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=300), ctype=st.sampled_from(["application/json", "text/x", ""]))
async def test_api_survives_random_bytes(ingress: Ingress, body: bytes, ctype: str) -> None:
    """Random bytes to the runs endpoint: refused clearly or accepted and stored."""
    doc = (await ingress.http.get("/openapi.json")).json()
    headers = {**ingress.auth(), "content-type": ctype}
    resp = await asyncio.wait_for(ingress.http.post(RUNS, content=body, headers=headers), 5)
    check_answer(doc, "POST", RUNS, resp)
    if resp.status_code == 202:
        await _check_accounting(ingress, [resp.json()])


# every route: the ingress and the AI gateway in one app ------------------------------------


@dataclass
class Full:
    """An app with every route mounted: workflows, webhooks, indexes, the AI gateway."""

    http: httpx.AsyncClient
    app: SluiceApp
    routes: list[Route]
    sim: SimulatorServer
    key: str
    doc: dict[str, Any]

    def auth(self) -> dict[str, str]:
        """The Authorization header of the tenant."""
        return {"authorization": f"Bearer {self.key}"}

    def signed(self, body: bytes, msg_id: str = "m1") -> dict[str, str]:
        """Standard Webhooks headers for ``body``."""
        return Ingress.signed(body, msg_id=msg_id)

    async def alive(self) -> None:
        """The server still answers."""
        assert (await self.http.get("/healthz")).status_code == 200

    async def sim_requests(self) -> int:
        """Calls the provider has seen."""
        async with httpx.AsyncClient() as http:
            stats = (await http.get(f"http://127.0.0.1:{self.sim.port}/sim/stats")).json()
        requests: int = stats["requests"]
        return requests


@pytest.fixture
async def full(make_app: MakeApp) -> AsyncIterator[Full]:
    """The ingress test app plus a ``gateway:`` section in front of a model simulator."""
    if not DATA.exists():
        pytest.skip(f"{DATA} is not there")
    answerer = await asyncio.to_thread(TfidfAnswerer.from_csv, DATA, limit=200)
    sim = SimulatorServer(ModelSimulator(answerer))
    async with sim:
        config = textwrap.dedent(CONFIG) + textwrap.dedent(GATEWAY.format(port=sim.port))
        settings = load_settings(make_app(config, {"tickets.yaml": WORKFLOW}))
        app = SluiceApp.from_settings(settings)
        asgi = create_http_app(app, intake.Ingress(app, parse_ingress(settings)))
        # The correlation middleware wraps the webhook fast path, which wraps the Starlette app.
        starlette = asgi.app.app  # type: ignore[attr-defined]  # the middlewares' wrapped apps
        routes = [r for r in starlette.routes if isinstance(r, Route)]
        await app.start()
        _, key = await create_api_key(app.store, "acme")
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            doc = (await http.get("/openapi.json")).json()
            yield Full(http, app, routes, sim, key, doc)
        await app.stop()


def _concrete(template: str) -> str:
    for name, value in CONCRETE.items():
        template = template.replace(name, value)
    return template


async def test_the_document_covers_every_route(full: Full) -> None:
    """Every route the app mounts, with every method it answers, is an operation of the
    OpenAPI document, so the fuzzing below and clients see all of them."""
    assert {CHAT, "/v1/models", "/v1/status", "/v1/indexes/{name}/items"} <= set(full.doc["paths"])
    for route in full.routes:
        for method in route.methods or ():
            if method != "HEAD":  # Starlette's implicit HEAD of a GET
                path = _concrete(route.path)
                assert documented(full.doc, path, method) is not None, (method, route.path)


async def test_the_document_lists_the_servers_own_refusals(full: Full) -> None:
    """The refusals the server answers before any route (slow or oversized requests, too many
    connections or requests in flight) are documented on every operation, as problems."""
    for path, operations in full.doc["paths"].items():
        for method, operation in operations.items():
            for code in ("400", "408", "429", "431", "503"):
                content = operation["responses"].get(code, {}).get("content", {})
                assert "application/problem+json" in content, (method, path, code)


DEEP = b"[" * 300 + b"]" * 300  # orjson reads it, cannot write it back
DEEPER = b"[" * 1_100 + b"]" * 1_100  # past orjson's own depth limit
WIDE = orjson.dumps(list(range(10_000)))


def _hostile_bodies() -> dict[str, dict[str, bytes]]:
    """For each JSON-reading route, bodies too deep or too wide in the places it reads."""
    chat_deep = b'{"model": "chat", "messages": [{"role": "user", "content": %s}]}'
    chat_wide = orjson.dumps({"model": "chat", "messages": list(range(10_000))})
    hook_deep = b'{"ticket": {"description": "x", "more": %s}}'
    wide_object = orjson.dumps({f"k{i}": i for i in range(10_000)})
    return {
        HOOK: {"deep": hook_deep % DEEP, "deeper": DEEPER, "wide": WIDE,
               "wide-object": wide_object},
        RUNS: {"deep": b'{"text": %s}' % DEEP, "deeper": DEEPER, "wide": WIDE,
               "wide-object": wide_object},
        "/v1/indexes/tickets/items": {"deep": b'{"items": %s}' % DEEP, "deeper": DEEPER,
                                      "wide": b'{"delete": %s}' % WIDE, "wide-object": wide_object},
        CHAT: {"deep": chat_deep % DEEP, "deeper": DEEPER, "wide": chat_wide,
               "wide-object": wide_object},
    }  # fmt: skip


async def test_deep_and_wide_json_on_every_route(full: Full) -> None:
    """JSON nested past the limit (and past the parser's own limit) or wider than it, on every
    route that reads JSON: a documented 4xx of the route's shape, never a 5xx, nothing
    stored, no provider called, the server alive."""
    before = await full.sim_requests()
    for path, bodies in _hostile_bodies().items():
        for name, body in bodies.items():
            headers = {**full.auth(), **full.signed(body, msg_id=f"{path}-{name}")}
            resp = await asyncio.wait_for(full.http.post(path, content=body, headers=headers), 10)
            check_answer(full.doc, "POST", path, resp)
            assert 400 <= resp.status_code < 500, (path, name, resp.status_code)
            await full.alive()
    assert await full.sim_requests() == before
    assert len(full.app.services["ai_gateway"].keys) == 0
    assert await _stored(full.app) == (0, 0, 0)


async def test_every_route_and_method(full: Full) -> None:
    """Every route with every method, with and without credentials and a body: documented
    operations answer a documented status, the others 404 or 405; never a 5xx, nothing
    stored by a refusal, the server alive."""
    body = b"{}"
    for route in full.routes:
        path = _concrete(route.path)
        for method in METHODS:
            for headers in ({}, {**full.auth(), "content-type": "application/json"}):
                resp = await asyncio.wait_for(
                    full.http.request(method, path, content=body, headers=headers), 10
                )
                where = (method, path, resp.status_code)
                assert resp.status_code < 500, where
                if documented(full.doc, path, "GET" if method == "HEAD" else method) is not None:
                    check_answer(full.doc, method, path, resp)
                else:
                    assert resp.status_code in (404, 405), where
        await full.alive()
    # {} is no valid run: it is quarantined with its 422, the one refusal that keeps a record.
    events, quarantined, keys = await _stored(full.app)
    assert (events, keys) == (0, 0)
    assert quarantined == 1


async def test_router_refusals_are_problem_documents(full: Full) -> None:
    """An unknown path or a method a route does not take: a problem document too."""
    for method, path in (("GET", "/nope"), ("DELETE", RUNS), ("GET", HOOK)):
        resp = await full.http.request(method, path)
        assert resp.status_code in (404, 405)
        assert resp.headers["content-type"] == "application/problem+json"


HEADER_VALUES = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300
) | st.sampled_from(["", " ", "k" * 256, "Bearer ", "Bearer sk_x_y"])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    payload=JSON | st.fixed_dictionaries({"model": st.just("chat"), "messages": JSON}),
    ctype=st.sampled_from(["application/json", "text/plain", ""]),
    key=st.none() | HEADER_VALUES,
    repeat=st.sampled_from([None, "authorization", "idempotency-key"]),
)
async def test_chat_survives_random_requests(
    full: Full, payload: Any, ctype: str, key: str | None, repeat: str | None
) -> None:
    """Random bodies, media types, idempotency keys and repeated headers on the chat route:
    a documented status, OpenAI-shaped refusals, never a 5xx, the server alive."""
    headers = [*full.auth().items(), ("content-type", ctype)]
    if key is not None:
        headers.append(("idempotency-key", key))
    if repeat is not None:
        headers.append((repeat, "again"))
    resp = await asyncio.wait_for(
        full.http.post(CHAT, content=orjson.dumps(payload), headers=headers), 10
    )
    check_answer(full.doc, "POST", CHAT, resp)
    await full.alive()


# schemathesis against a real server -------------------------------------------------------


@dataclass
class Served:
    """A real ``sluice serve`` (with the AI gateway) and what the checks need of it."""

    url: str
    key: str
    db: Path


def _wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        assert proc.poll() is None, f"{url}: the process exited"
        try:
            httpx.get(url)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A real ``sluice serve``, its gateway in front of ``sluice simulate-model``."""
    if not DATA.exists():
        pytest.skip(f"{DATA} is not there")
    app_dir = tmp_path_factory.mktemp("fuzz")
    (app_dir / "workflows").mkdir()
    small = app_dir / "train.csv"
    small.write_text("".join(DATA.read_text().splitlines(keepends=True)[:200]))
    sim_port, port = free_port(), free_port()
    config = textwrap.dedent(CONFIG) + textwrap.dedent(GATEWAY.format(port=sim_port))
    (app_dir / "sluice.yaml").write_text(config)
    (app_dir / "workflows" / "tickets.yaml").write_text(textwrap.dedent(WORKFLOW))
    sluice = [sys.executable, "-m", "sluice"]
    # The simulator starts (and spends its seconds importing) while the store is made and
    # the key created, which must come before the server: one process creates the schema.
    sim = subprocess.Popen(
        [*sluice, "simulate-model", "--port", str(sim_port), "--p50-ms", "0", "--data", str(small)]
    )
    proc: subprocess.Popen[bytes] | None = None
    try:
        key = subprocess.run(
            [*sluice, "apikey", "create", "--tenant", "acme", "--app", str(app_dir)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        proc = subprocess.Popen([*sluice, "serve", str(app_dir), "--port", str(port)])
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"http://127.0.0.1:{sim_port}/sim/stats", sim)
        _wait_http(f"{url}/healthz", proc)
        yield Served(url, key, load_settings(app_dir).sqlite_path())
    finally:
        for p in (proc, sim):
            if p is not None:
                p.terminate()
                p.wait(timeout=30)


def _rows(db: Path) -> tuple[int, ...]:
    """Rows of the tables a request may write: events, quarantine, idempotency keys."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return tuple(
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # table names are fixed
            for table in ("events", "quarantine", "idempotency")
        )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_openapi_operations_never_fail_on_the_server(server: Served, mode: GenerationMode) -> None:
    """Requests generated from the OpenAPI document, valid and invalid, for every operation
    (the AI gateway's included): only the statuses that operation documents, never a 500,
    refusals of the route's shape, nothing stored by a refusal, the server alive."""
    doc = httpx.get(f"{server.url}/openapi.json").json()
    api = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    results = list(api.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "every operation of the document loads"
    assert {op.path for op in operations} >= {CHAT, "/v1/models", "/v1/status"}
    seen: set[int] = set()
    exercised = 0
    for operation in operations:

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def exercise(case: Any) -> None:
            before = _rows(server.db)
            response = case.call(
                base_url=server.url, headers={"authorization": f"Bearer {server.key}"}
            )
            path = urlsplit(str(response.request.url)).path
            headers = [(k, v) for k, values in response.headers.items() for v in values]
            check_answer(doc, case.method, path, httpx.Response(
                response.status_code, headers=headers, content=response.content
            ))  # fmt: skip
            seen.add(response.status_code)
            # A 422 quarantines the run it refuses (by design); every other refusal keeps nothing.
            if response.status_code >= 400 and response.status_code != 422:
                assert _rows(server.db) == before, (case.method, path, response.status_code)

        try:
            exercise()
        except Unsatisfiable:
            # An operation without inputs (healthz) has no invalid variant to generate.
            assert mode is GenerationMode.NEGATIVE
            continue
        exercised += 1
    assert exercised >= 5
    assert seen & {200, 202, 400, 401, 404, 422}
    assert httpx.get(f"{server.url}/readyz").status_code == 200
