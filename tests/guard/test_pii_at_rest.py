"""PII through every refusal path, with encryption at rest: none of it lands on disk in clear.

An e-mail address, a card number, an IBAN and a phone number are seeded into a quarantine by
schema and by mapping (a webhook), a 422 API run, a step that raises quoting its input (a
retry, then a dead letter) and the idempotency keys of both ways in. Then the raw bytes of the
SQLite database and its -wal and -shm files (on PostgreSQL: every row of every table as the
server renders it, bytea as hex), the captured log lines (JSON and text), the stored spans and
``/metrics`` must hold none of the values, while the authorized reader still gets the step's
error back decrypted.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.config import load_settings
from sluice.ingress.apikeys import create_api_key
from sluice.ingress.intake import Ingress
from sluice.ingress.settings import parse_ingress
from sluice.outbound.signing import decode_secret, sign
from sluice.store.base import EventState
from sluice.telemetry.logs import JsonFormatter, configure_logging
from tests.conftest import MakeApp
from tests.store.conftest import drop_test_schema, new_schema, postgres_schema_url, schema_text

EMAIL = "jane.doe@example.com"
CARD = "4111111111111111"
IBAN = "DE89370400440532013000"
PHONE = "+44 20 7946 0958"
PII = (EMAIL, CARD, IBAN, PHONE)
# Also the forms a message could turn them into.
NEEDLES = (*PII, "jane.doe", "4111 1111 1111 1111", "7946 0958", "+442079460958")
NOTE = f"mail {EMAIL} or IBAN {IBAN}"
SECRET = "whsec_" + base64.b64encode(b"pii-at-rest-source-key!!").decode()
ENCRYPTION_KEY = base64.b64encode(b"p" * 32).decode()

CONFIG = f"""
store: sqlite:///.sluice/pii.db
pools:
  cpu: {{concurrency: 2, queue_limit: 50}}
runtime: {{poll_ms: 20}}
telemetry: {{flush_ms: 50, sample_ratio: 1}}
encryption: {{active: k1, keys: {{k1: {ENCRYPTION_KEY}}}}}
sources:
  payments:
    workflow: payments
    tenant: acme
    secrets: [{SECRET}]
    mapping:
      text: $.note
      card: {{path: $.card, default: 0}}
      amount: {{path: $.amount, transform: int}}
"""
WORKFLOW = """
name: payments
input_schema:
  type: object
  required: [text, amount]
  additionalProperties: false
  properties:
    text: {type: string, maxLength: 40}
    card: {type: integer}
    amount: {type: integer}
    contact: {type: string, enum: [mail, phone]}
steps:
  - {name: parse, pool: cpu, uses: "pii_steps:parse", retries: 1}
"""
STEPS = """
async def parse(ctx, data):
    raise ValueError(f"could not parse {data['text']}")
"""


@dataclass
class Served:
    """The app, an in-process client, an API key, the app directory and the store's place."""

    http: httpx.AsyncClient
    app: SluiceApp
    key: str
    app_dir: Path
    schema: str | None  # the PostgreSQL schema, or None on SQLite


@pytest.fixture
def captured_logs() -> Iterator[list[io.StringIO]]:
    """Every log record of the process: as the JSON and the text lines serve writes, and
    through a plain formatter (an embedding application's own handler) that masks nothing."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    configure_logging("text")  # the formatters a served process installs
    outs: list[io.StringIO] = []
    plain = logging.Formatter("%(name)s %(message)s")
    for formatter in (JsonFormatter(), root.handlers[0].formatter, plain):
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(formatter)
        root.addHandler(handler)
        outs.append(out)
    root.setLevel(logging.DEBUG)
    yield outs
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(params=["sqlite", "postgres"])
async def served(make_app: MakeApp, request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    """A started app with encryption at rest behind the full gateway (in-process client)."""
    app_dir = make_app(CONFIG, {"payments.yaml": WORKFLOW}, {"pii_steps.py": STEPS})
    schema = new_schema() if request.param == "postgres" else None
    environ = {} if schema is None else {"SLUICE_STORE": postgres_schema_url(schema)}
    settings = load_settings(app_dir, environ=environ)
    app = SluiceApp.from_settings(settings)
    gateway = Ingress(app, parse_ingress(settings))
    await app.start()
    _, key = await create_api_key(app.store, "acme")
    transport = httpx.ASGITransport(app=create_http_app(app, gateway))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield Served(http, app, key, app_dir, schema)
    await app.stop()
    if schema is not None:
        await drop_test_schema(schema)


def _signed(body: bytes, msg_id: str) -> dict[str, str]:
    stamp = int(time.time())
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(decode_secret(SECRET), msg_id, stamp, body),
    }


def _leaks(data: bytes | str) -> list[str]:
    """The PII values (in any form above) found in ``data``."""
    raw = (data.encode() if isinstance(data, str) else data).lower()
    # PostgreSQL renders bytea as hex: plain bytes there would show as the hex of the value.
    return [n for n in NEEDLES if n.encode().lower() in raw or n.encode().hex().encode() in raw]


async def _refuse_everything(s: Served) -> str:
    """Seed the PII through every refusal path; return the dead event's id."""
    hooks = "/v1/hooks/payments"
    # Quarantine by schema: a card number where an integer belongs, an e-mail past maxLength,
    # and a field the schema does not allow whose name is a phone number.
    by_schema = orjson.dumps({"note": NOTE, "card": CARD, "amount": 5})
    resp = await s.http.post(hooks, content=by_schema, headers=_signed(by_schema, f"m-{PHONE}"))
    assert resp.json()["status"] == "quarantined"
    # Quarantine by mapping: int() of an e-mail address quotes it in its exception.
    by_mapping = orjson.dumps({"note": "hi", "amount": EMAIL})
    resp = await s.http.post(hooks, content=by_mapping, headers=_signed(by_mapping, f"m-{EMAIL}"))
    assert resp.json()["status"] == "quarantined"
    # An API run: the 422 problem document lists every error; its key is an e-mail.
    auth = {"authorization": f"Bearer {s.key}"}
    bad = {"text": NOTE, "amount": CARD, "contact": EMAIL, PHONE: 1}
    resp = await s.http.post(
        "/v1/workflows/payments/runs", json=bad, headers={**auth, "idempotency-key": EMAIL}
    )
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.text
    assert len(resp.json()["errors"]) == 4
    assert _leaks(problem) == [], problem
    # A step that raises quoting its input: retried once, then dead-lettered.
    resp = await s.http.post(
        "/v1/workflows/payments/runs",
        json={"text": f"to {EMAIL}", "amount": 1},
        headers={**auth, "idempotency-key": f"{CARD}-{IBAN}"},
    )
    assert resp.status_code == 202, resp.text
    event_id: str = resp.json()["event_id"]
    record = await s.app.runtime.wait(event_id, 30)
    assert record.state is EventState.DEAD
    return event_id


async def test_no_pii_reaches_disk_logs_spans_or_metrics(
    served: Served, captured_logs: list[io.StringIO]
) -> None:
    """Every refusal path with PII in it; then scan every place the app writes."""
    s = served
    event_id = await _refuse_everything(s)

    # The authorized reader still sees what happened, decrypted.
    auth = {"authorization": f"Bearer {s.key}"}
    run = (await s.http.get(f"/v1/runs/{event_id}", headers=auth)).json()
    assert run["status"] == "dead"
    assert f"could not parse to {EMAIL}" in run["error"]
    items = await s.app.store.list_quarantine()
    assert len(items) == 3
    reasons = {problem for item in items for problem in item.problems}
    assert "$.card: expected integer, got string (16 chars)" in reasons
    assert f"$.text: expected at most 40 chars, got string ({len(NOTE)} chars)" in reasons
    assert "mapping: amount: transform int cannot convert $.amount (string (20 chars))" in reasons
    assert _leaks(repr([(i.reason, i.problems) for i in items])) == []
    assert any(EMAIL.encode() in i.payload for i in items)  # the payload is kept, sealed

    await s.app.telemetry.flush()
    metrics = (await s.http.get("/metrics")).text
    assert "sluice_events_quarantined_total{" in metrics
    assert _leaks(metrics) == []
    spans = await s.app.store.trace_spans(await s.app.store.event_trace_id(event_id) or "")
    assert any(span.name == "step parse" for span in spans)
    assert _leaks(orjson.dumps([[x.name, x.attributes, x.status] for x in spans])) == []

    json_lines, text_lines, plain_lines = (out.getvalue() for out in captured_logs)
    assert "retrying" in json_lines  # the retry and the dead letter are logged, masked
    assert "<EMAIL_1>" in json_lines
    assert _leaks(json_lines) == []
    assert _leaks(text_lines) == []
    assert _leaks(plain_lines) == []  # the executor masks step errors before logging them

    if s.schema is not None:
        assert _leaks(await schema_text(s.schema)) == []
        return
    # The raw files, while the app runs (the WAL holds the recent writes) and after it stops.
    db = s.app_dir / ".sluice" / "pii.db"
    files = [db, db.with_name("pii.db-wal"), db.with_name("pii.db-shm")]
    assert files[1].stat().st_size > 0
    for path in files:
        assert _leaks(path.read_bytes()) == [], path.name
    await s.app.stop()
    for path in files:
        if path.exists():
            assert _leaks(path.read_bytes()) == [], path.name
