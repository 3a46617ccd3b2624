"""An app with PII and secrets in its events, stored on PostgreSQL (sealed at rest), and the
servers environments are made on.

PostgreSQL and Redis are the test servers (``SLUICE_TEST_POSTGRES``, ``SLUICE_TEST_REDIS``); a
missing server fails these tests rather than skipping them. The app's own store is a schema of
this test's own (``tests/store/conftest.py``), dropped after; each environment gets its own
schema or database and key prefix, and every test takes its environments down.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sluice.testing import TestApp
from tests.conftest import MakeApp
from tests.kv.conftest import REDIS_URL
from tests.store.conftest import POSTGRES_URL, drop_test_schema, new_schema, postgres_schema_url

# A fixed test key (32 bytes): the app's payloads are sealed at rest with it.
ENCRYPTION_KEY = base64.b64encode(bytes(range(32))).decode()
WEBHOOK_SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLWZpeHR1cmVzLTEyMw=="

CONFIG = f"""
store: sqlite:///.sluice/app.db
workflows: workflows
pools:
  cpu: {{concurrency: 4, queue_limit: 1000}}
encryption:
  active: k1
  keys: {{k1: {ENCRYPTION_KEY}}}
sources:
  helpdesk:
    workflow: echo
    tenant: acme
    secrets: [{WEBHOOK_SECRET}]
    mapping:
      text: $.ticket.text
"""

# No PII masking at ingress: the events hold the values as sent, as a workflow that keeps
# its inputs would, so the export is what must mask them.
WORKFLOW = """
name: echo
version: 1
budget_ms: 10000
input_schema:
  type: object
  required: [text]
  properties:
    text: {type: string}
    email: {type: string}
    api_key: {type: string}
steps:
  - name: upper
    pool: cpu
    uses: echo_steps:upper
  - name: reply
    pool: cpu
    uses: echo_steps:reply
"""

STEPS = """
from sluice.workflow import JSONObject, StepContext


async def upper(ctx: StepContext, data: JSONObject) -> JSONObject:
    return {**data, "shout": data["text"].upper()}


async def reply(ctx: StepContext, data: JSONObject) -> JSONObject:
    return {"to": data.get("email", ""), "text": data["text"], "len": len(data["text"])}
"""


SUITES = """
golden:
  suites: [echo]
"""

GOLDEN = """
suite: echo
version: 1
workflow: echo
cases:
  - name: short
    input: {text: "hi there"}
    expect: {text: "hi there", len: 8}
  - name: with-address
    input: {text: "write to me", email: "someone@example.com"}
    expect: {to: {pattern: "@example\\\\.com$"}, len: {min: 1, max: 100}}
"""


def environments_yaml(**extra: str) -> str:
    """An environments file with ``pg`` (a schema), ``pgdb`` (a database), ``lite`` (SQLite +
    memory) and ``pg2`` (a second schema on the same servers)."""
    text = f"""
environments:
  pg:
    store: {POSTGRES_URL}
    kv: {REDIS_URL}
    release: r1
    mocks: {{payments: {{status: 200}}}}
  pg2:
    store: {POSTGRES_URL}
    kv: {REDIS_URL}
  pgdb:
    store: {{url: {POSTGRES_URL}, isolate: database}}
    kv: {{url: {REDIS_URL}, database: 1}}
  lite:
    store: sqlite
    kv: memory
"""
    for name, body in extra.items():
        text += f"  {name}:\n{body}"
    return text


@dataclass
class EchoApp:
    """The app directory and the URL of its own (production-like) store."""

    app_dir: Path
    store_url: str
    schema: str

    @property
    def environ(self) -> dict[str, str]:
        """The environment that points the app at its store."""
        return {"SLUICE_STORE": self.store_url}


@pytest.fixture
def echo_app(make_app: MakeApp) -> Iterator[EchoApp]:
    """The echo app on a PostgreSQL schema of this test's own, with ``environments.yaml``.

    A plain fixture: the tests drive the ``sluice`` command, which runs its own event loop.
    """
    app_dir = make_app(CONFIG, {"echo.yaml": WORKFLOW}, {"echo_steps.py": STEPS})
    (app_dir / "environments.yaml").write_text(environments_yaml())
    (app_dir / "tests" / "golden").mkdir(parents=True)
    (app_dir / "tests" / "suites.yaml").write_text(SUITES)
    (app_dir / "tests" / "golden" / "echo.v1.yaml").write_text(GOLDEN)
    schema = new_schema()
    try:
        yield EchoApp(app_dir, postgres_schema_url(schema), schema)
    finally:
        asyncio.run(drop_test_schema(schema))


async def run_events(app: EchoApp, inputs: list[dict[str, str]]) -> list[str]:
    """Run each input through the app on its store; the finished events' ids."""
    ids = []
    async with TestApp(app.app_dir, store=app.store_url, tenant="acme") as running:
        for data in inputs:
            run = await running.run("echo", data)
            assert run["status"] == "done", run
            ids.append(run["event_id"])
    return ids
