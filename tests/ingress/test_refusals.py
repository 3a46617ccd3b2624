"""Refusals of the HTTP API: each answers its status and a problem document carrying the
correlation id, and leaves nothing behind (no event, job, idempotency key or quarantine row).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.config import load_settings
from sluice.ingress import intake
from sluice.ingress.apikeys import create_api_key
from sluice.ingress.settings import parse_ingress
from sluice.testing.servers import AsgiServer
from tests.conftest import MakeApp
from tests.ingress.conftest import ENCRYPTION_KEY, SECRET_NEW, Ingress

RUNS = "/v1/workflows/tickets/runs"
GUARDED = "/v1/workflows/guarded/runs"
QUEUE_LIMIT = 3
MAX_BODY = 4096
CONFIG = f"""
store: sqlite:///.sluice/refusals.db
pools:
  cpu: {{concurrency: 4, queue_limit: {QUEUE_LIMIT}}}
runtime: {{poll_ms: 20}}
ingress: {{max_body_bytes: {MAX_BODY}}}
encryption: {{active: k1, keys: {{k1: {ENCRYPTION_KEY}}}}}
rate_limits:
  default: {{rate: 1000, burst: 1000}}
  tenants:
    slow: {{rate: 0.001, burst: 1}}
sources:
  helpdesk:
    workflow: tickets
    tenant: acme
    secrets: [{SECRET_NEW}]
    mapping: {{text: $.ticket.description}}
  slowdesk:
    workflow: tickets
    tenant: slow
    secrets: [{SECRET_NEW}]
    mapping: {{text: $.ticket.description}}
"""
TICKETS = """
name: tickets
input_schema:
  type: object
  required: [text]
  properties: {text: {type: string, minLength: 1}}
steps:
  - {name: keep, pool: cpu, uses: noop}
"""
# Every event takes 50 ms against a 5 ms p95: after three the guard closes (a busy machine
# only makes events slower, so it closes all the more surely).
GUARDED_WORKFLOW = """
name: guarded
slo: {p95_ms: 5, error_rate: 0.5, window_s: 60, policy: fail_closed, min_events: 3,
      recover_s: 600}
steps:
  - {name: slow, pool: cpu, uses: sleep, options: {ms: 50}}
"""
TABLES = ("events", "jobs", "idempotency", "quarantine")


@pytest.fixture
async def ingress(make_app: MakeApp) -> AsyncIterator[Ingress]:
    """A started app with a small queue and body limit, a rate-limited webhook source and a
    workflow behind a fail-closed SLO guard, reached in process."""
    app_dir = make_app(CONFIG, {"tickets.yaml": TICKETS, "guarded.yaml": GUARDED_WORKFLOW})
    settings = load_settings(app_dir)
    app = SluiceApp.from_settings(settings)
    gateway = intake.Ingress(app, parse_ingress(settings))
    await app.start()
    keys = {}
    for tenant in ("acme", "slow"):
        _, keys[tenant] = await create_api_key(app.store, tenant)
    transport = httpx.ASGITransport(app=create_http_app(app, gateway))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield Ingress(http, app, gateway, keys)
    await app.stop()


def rows(app: SluiceApp) -> dict[str, int]:
    """Row counts of the tables a request may write, read from the database file itself."""
    path = Path(app.store.path)  # type: ignore[attr-defined]  # the SQLite store of CONFIG
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


NOTHING = dict.fromkeys(TABLES, 0)


def assert_problem(resp: httpx.Response, status: int, kind: str) -> dict[str, object]:
    """``resp`` is a problem document of ``status`` and ``kind`` naming its correlation id."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = resp.json()
    assert body["type"] == f"https://sluice.dev/problems/{kind}"
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["correlation_id"] == resp.headers["x-correlation-id"]
    return body


def hook_body(text: str = "my card is lost") -> bytes:
    """A helpdesk delivery."""
    return orjson.dumps({"ticket": {"description": text}})


async def test_an_internal_error_is_a_500_problem_with_the_correlation_id(
    ingress: Ingress,
) -> None:
    """A failure nobody planned for (here the events table is gone) is a 500 problem document
    with the request's correlation id, not a bare text page; nothing is written."""
    path = Path(ingress.app.store.path)  # type: ignore[attr-defined]  # the SQLite store
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE events RENAME TO events_away")
    resp = await ingress.http.post(RUNS, json={"text": "x"}, headers=ingress.auth())
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE events_away RENAME TO events")
    body = assert_problem(resp, 500, "internal")
    assert "events" not in str(body["detail"])  # the cause is logged, not told to the caller
    assert rows(ingress.app) == NOTHING


async def test_readyz_is_503_while_the_app_is_not_started(ingress: Ingress) -> None:
    """A stopped app is not ready: 503 problem (load balancers stop sending); healthz stays ok."""
    await ingress.app.stop()
    try:
        assert_problem(await ingress.http.get("/readyz"), 503, "not-ready")
        assert (await ingress.http.get("/healthz")).status_code == 200
    finally:
        await ingress.app.start()
    assert (await ingress.http.get("/readyz")).status_code == 200


@pytest.mark.parametrize("wait", ["soon", "nan1", ""])
async def test_a_wait_that_is_not_a_number_is_400(ingress: Ingress, wait: str) -> None:
    """``?wait=`` must be a number of seconds; the run is not accepted."""
    resp = await ingress.http.post(f"{RUNS}?wait={wait}", json={"text": "x"},
                                   headers=ingress.auth())  # fmt: skip
    body = assert_problem(resp, 400, "bad-parameter")
    assert "wait" in str(body["detail"])
    assert rows(ingress.app) == NOTHING


async def _chunks(total: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * 1024
        sent += 1024


async def test_a_streamed_body_past_the_limit_is_413_over_the_real_server(
    ingress: Ingress,
) -> None:
    """A chunked body declares no length: it is counted as it arrives and refused past the
    limit, through uvicorn like any client would send it."""
    server = AsgiServer(create_http_app(ingress.app, ingress.gateway))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            hook_headers = Ingress.signed(b"{}", "m-big")
            for path, headers in ((RUNS, ingress.auth()), ("/v1/hooks/helpdesk", hook_headers)):
                resp = await client.post(
                    path,
                    content=_chunks(MAX_BODY * 4),
                    headers={**headers, "content-type": "application/json"},
                )
                body = assert_problem(resp, 413, "payload-too-large")
                assert str(MAX_BODY) in str(body["detail"])
    finally:
        await server.aclose()
    assert rows(ingress.app) == NOTHING


@pytest.mark.parametrize(
    "path", ["/v1/runs/01J00000000000000000000000", "/v1/status", "/v1/indexes/tickets/items"]
)
@pytest.mark.parametrize("authorization", [None, "Bearer sk_abcdef123456_wrongsecret"])
async def test_reads_and_index_deltas_without_a_valid_key_are_401(
    ingress: Ingress, path: str, authorization: str | None
) -> None:
    """Run status, app status and index deltas need an API key like runs do."""
    headers = {} if authorization is None else {"authorization": authorization}
    if path.startswith("/v1/indexes"):
        resp = await ingress.http.post(path, json={"items": []}, headers=headers)
    else:
        resp = await ingress.http.get(path, headers=headers)
    assert_problem(resp, 401, "unauthorized")
    assert resp.headers["www-authenticate"] == "Bearer"
    assert rows(ingress.app) == NOTHING


@pytest.mark.parametrize(
    ("content", "ctype", "status", "kind"),
    [
        (b"{nope", "application/json", 400, "malformed-json"),
        (b"x" * (MAX_BODY + 1), "application/json", 413, "payload-too-large"),
        (b"items=a", "application/x-www-form-urlencoded", 415, "unsupported-media-type"),
    ],
)
async def test_bad_index_deltas_are_refused(
    ingress: Ingress, content: bytes, ctype: str, status: int, kind: str
) -> None:
    """Index deltas are read like runs: media type, size, then JSON (the triage test checks
    that a live index is left unchanged). Index items need an operator's key (indexes:write)."""
    _, key = await create_api_key(ingress.app.store, "acme", ("runner", "operator"))
    resp = await ingress.http.post("/v1/indexes/tickets/items", content=content,
                                   headers={"authorization": f"Bearer {key}",
                                            "content-type": ctype})  # fmt: skip
    assert_problem(resp, status, kind)
    assert rows(ingress.app) == NOTHING


async def test_a_webhook_over_its_tenants_rate_is_429(ingress: Ingress) -> None:
    """The source's tenant has one token: the second delivery is 429 with Retry-After, and
    writes nothing (the sender retries it later under the same id)."""
    first = hook_body("first")
    resp = await ingress.http.post("/v1/hooks/slowdesk", content=first,
                                   headers=Ingress.signed(first, "m-1"))  # fmt: skip
    assert resp.status_code == 202
    before = rows(ingress.app)
    second = hook_body("second")
    resp = await ingress.http.post("/v1/hooks/slowdesk", content=second,
                                   headers=Ingress.signed(second, "m-2"))  # fmt: skip
    body = assert_problem(resp, 429, "rate-limited")
    assert "slow" in str(body["detail"])
    assert int(resp.headers["retry-after"]) >= 1
    assert rows(ingress.app) == before


async def test_a_webhook_into_a_full_queue_is_503(ingress: Ingress) -> None:
    """With no workers the first pool fills to its queue_limit; the next delivery is 503
    with Retry-After and is not written."""
    await ingress.app.runtime.stop()
    for i in range(QUEUE_LIMIT):
        body = hook_body(f"t{i}")
        resp = await ingress.http.post("/v1/hooks/helpdesk", content=body,
                                       headers=Ingress.signed(body, f"m-{i}"))  # fmt: skip
        assert resp.status_code == 202
    before = rows(ingress.app)
    assert before["events"] == QUEUE_LIMIT
    body = hook_body("one too many")
    resp = await ingress.http.post("/v1/hooks/helpdesk", content=body,
                                   headers=Ingress.signed(body, "m-late"))  # fmt: skip
    problem = assert_problem(resp, 503, "overloaded")
    assert "queue_limit" in str(problem["detail"])
    assert int(resp.headers["retry-after"]) >= 1
    assert rows(ingress.app) == before


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_a_webhook_that_is_not_json_is_415(ingress: Ingress, ctype: str) -> None:
    """Deliveries must be JSON; another media type is refused before the signature is
    checked and nothing is quarantined."""
    body = hook_body()
    headers = {**Ingress.signed(body, "m-415"), "content-type": ctype}
    resp = await ingress.http.post("/v1/hooks/helpdesk", content=body, headers=headers)
    assert_problem(resp, 415, "unsupported-media-type")
    assert rows(ingress.app) == NOTHING


async def test_the_slo_guard_refuses_over_http_with_503(ingress: Ingress) -> None:
    """Three slow events close the guard of ``guarded``; the next run is a 503 problem naming
    the SLO, with Retry-After, and is not written. Other workflows are still admitted."""
    for i in range(3):
        resp = await ingress.http.post(f"{GUARDED}?wait=30", json={"n": i},
                                       headers=ingress.auth())  # fmt: skip
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "done"
    guards = ingress.app.services["slo_guards"]
    deadline = asyncio.get_running_loop().time() + 30
    while guards.get("guarded").snapshot().state.value != "closed":  # recorded after the commit
        assert asyncio.get_running_loop().time() < deadline, guards.get("guarded").snapshot()
        await asyncio.sleep(0.01)
    before = rows(ingress.app)
    resp = await ingress.http.post(GUARDED, json={"n": 3}, headers=ingress.auth())
    body = assert_problem(resp, 503, "overloaded")
    assert "p95" in str(body["detail"])
    assert int(resp.headers["retry-after"]) >= 1
    assert rows(ingress.app) == before
    resp = await ingress.http.post(RUNS, json={"text": "still open"}, headers=ingress.auth())
    assert resp.status_code == 202
