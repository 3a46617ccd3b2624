"""A secret set with ``sluice secret set`` is used by a workflow (a model's ``api_key:
${secret:NAME}`` in ``sluice.yaml``, and a custom step reading ``ctx.service("secrets")``), and
then found nowhere it must not be: log output, the span and ledger tables, ``/metrics``, the
raw database (SQLite file bytes, every row of the PostgreSQL schema), error messages.

The model simulator requires the secret as its API key, so a passing run proves the value did
reach the one place it is meant for."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.cli.main import build_app
from sluice.config import load_settings
from sluice.drills.simulator import ModelSimulator, SimulatorSettings
from sluice.drills.simulator_server import SimulatorServer
from sluice.errors import ConfigError
from sluice.guard.crypto import new_key
from sluice.ingress.intake import Ingress
from sluice.ingress.settings import parse_ingress
from sluice.models.base import ModelRequest, ModelResult
from sluice.store.base import EventState
from tests.conftest import MakeApp
from tests.store.conftest import (
    POSTGRES_URL,
    drop_test_schema,
    new_schema,
    postgres_schema_url,
    schema_text,
)

LLM_KEY = "sk-live-Zq81vNw3TtPe0Lx4"
PARTNER_TOKEN = "ptok_4f1c9b2e7d3a5h8k"
TEMPLATE = """
model: llm
params: {temperature: 0, max_tokens: 40}
variables:
  ticket: {type: string}
system: You summarize tickets.
user: "Summarize: {{ ticket }}"
"""
STEPS = """
from sluice.errors import StepError


async def call_partner(ctx, data):
    token = await ctx.service("secrets").get("partner_token")
    # A careless log line and result: the typed accessor prints its name, not its value.
    ctx.logger.info("calling the partner with %s", token)
    return {**data, "auth": f"Bearer {token}", "length": len(token.reveal())}


async def refused(ctx, data):
    token = await ctx.service("secrets").get("partner_token")
    raise StepError(f"the partner refused token {token}", retryable=False)
"""


class Label:
    """The simulator's classifier (generation requests never reach it)."""

    name = "fixed"
    version = "1"

    async def predict(self, request: ModelRequest) -> ModelResult:
        """One label."""
        return ModelResult(model=self.name, output={}, label="x", confidence=0.9)


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatorServer]:
    """The generative simulator, answering only callers that send the secret as API key."""
    settings = SimulatorSettings(mode="generate", seed=3, api_key=LLM_KEY)
    async with SimulatorServer(ModelSimulator(Label(), settings)) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh store of each kind (the PostgreSQL schema dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'leaks.db'}"
        return
    schema = new_schema()
    yield postgres_schema_url(schema)
    await drop_test_schema(schema)


def _environ(store_url: str) -> dict[str, str]:
    keys = {"SLUICE_ENCRYPTION_KEYS": f"k1={new_key()}", "SLUICE_ENCRYPTION_ACTIVE": "k1"}
    return {**os.environ, "SLUICE_STORE": store_url, **keys}


def _app(make_app: MakeApp, base_url: str, extra: str = "") -> Path:
    config = f"""
        pools:
          cpu: {{concurrency: 4}}
        telemetry: {{flush_ms: 50, sample_ratio: 1}}
        models:
          llm: {{kind: openai, base_url: {base_url}, api_key: "${{secret:llm_key}}"}}
        prices:
          llm: {{input_per_1k: 0.001, output_per_1k: 0.002}}
        outbound: {{allow_private: ["127.0.0.1/32"]}}   # the simulator listens on loopback
    """ + textwrap.indent(textwrap.dedent(extra), " " * 8)
    workflows = {
        "gen.yaml": """
            name: gen
            version: 1
            steps:
              - {name: partner, pool: cpu, uses: "leak_steps:call_partner"}
              - {name: draft, pool: cpu, uses: generate,
                 options: {template: summary, inputs: {ticket: text}}}
        """,
        "bad.yaml": """
            name: bad
            version: 1
            steps:
              - {name: partner, pool: cpu, uses: "leak_steps:refused"}
        """,
    }
    app_dir = make_app(config, workflows, {"leak_steps.py": STEPS})
    (app_dir / "prompts").mkdir()
    (app_dir / "prompts" / "summary.yaml").write_text(textwrap.dedent(TEMPLATE))
    return app_dir


async def _set(app_dir: Path, env: dict[str, str], name: str, value: str) -> None:
    """``sluice secret set NAME`` with the value on stdin (in a thread: it runs its own loop)."""
    result = await asyncio.to_thread(
        CliRunner().invoke, build_app(), ["secret", "set", name, "--app", str(app_dir)],
        input=value + "\n", env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert value not in result.output


async def _rows(store_url: str, table: str) -> list[str]:
    """Every row of ``table``, as text."""
    if store_url.startswith("sqlite:///"):
        with sqlite3.connect(store_url[len("sqlite:///") :]) as db:
            return [repr(row) for row in db.execute(f"SELECT * FROM {table}")]
    schema = store_url.rsplit("schema=", 1)[1]
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        return [r[0] for r in await conn.fetch(f"SELECT t::text FROM {schema}.{table} t")]
    finally:
        await conn.close()


async def _raw_store(store_url: str) -> str:
    """Every byte the store holds, as text (SQLite: the file and its WAL; PostgreSQL: every
    row of every table of the schema)."""
    if store_url.startswith("sqlite:///"):
        path = Path(store_url[len("sqlite:///") :])
        data = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        return data.decode("latin-1")
    return await schema_text(store_url.rsplit("schema=", 1)[1])


async def test_a_used_secret_is_nowhere_else(
    make_app: MakeApp,
    simulator: SimulatorServer,
    store_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Both secrets reach where they are used; logs, spans, ledger, /metrics, the raw store
    and the stored errors hold neither."""
    env = _environ(store_url)
    app_dir = _app(make_app, simulator.base_url)
    await _set(app_dir, env, "llm_key", LLM_KEY)
    await _set(app_dir, env, "partner_token", PARTNER_TOKEN)
    caplog.set_level(logging.DEBUG)
    app = SluiceApp.from_settings(load_settings(app_dir, env))
    async with app:
        good = await app.runtime.wait(
            await app.runtime.submit("gen", {"text": "my card is late"}), timeout=60
        )
        bad = await app.runtime.wait(await app.runtime.submit("bad", {}), timeout=60)
        await app.telemetry.flush()
        settings = load_settings(app_dir, env)
        http_app = create_http_app(app, Ingress(app, parse_ingress(settings)))
        transport = httpx.ASGITransport(app=http_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            scraped = await http.get("/metrics")
        metrics = scraped.text
    assert scraped.status_code == 200
    assert "sluice_model_calls_total{" in metrics  # the model call was counted, and scanned
    spans = await _rows(store_url, "spans")
    costs = await _rows(store_url, "costs")
    assert good.state is EventState.DONE, good.error
    assert bad.state is EventState.DEAD
    assert "SecretValue(partner_token@1)" in str(bad.error)  # the name, never the value
    assert len(spans) >= 4  # three steps and a model call were traced (and are scanned below)
    assert "chat llm" in "".join(spans)
    assert len(costs) == 1
    places = {
        "logs": caplog.text + "".join(r.getMessage() for r in caplog.records),
        "metrics": metrics,
        "spans and ledger": "".join(spans + costs),
        "event results and errors": f"{good.result!r} {good.error} {bad.error}",
        "raw store": await _raw_store(store_url),
    }
    for value in (LLM_KEY, PARTNER_TOKEN):
        found = [where for where, text in places.items() if value in text]
        assert found == [], f"secret found in {found}"
    assert "calling the partner with SecretValue(partner_token@1)" in places["logs"]


async def test_config_errors_never_quote_a_resolved_secret(
    make_app: MakeApp, simulator: SimulatorServer, store_url: str
) -> None:
    """A secret put where a section quotes bad values: the error names the reference."""
    env = _environ(store_url)
    app_dir = _app(make_app, simulator.base_url)
    (app_dir / "sluice.yaml").write_text(
        (app_dir / "sluice.yaml")
        .read_text()
        .replace(
            "telemetry: {flush_ms: 50, sample_ratio: 1}",
            'telemetry: {otlp_endpoint: "${secret:llm_key}"}',
        )
    )
    await _set(app_dir, env, "llm_key", LLM_KEY)
    with pytest.raises(ConfigError) as caught:
        SluiceApp.from_settings(load_settings(app_dir, env))
    assert LLM_KEY not in str(caught.value)
    assert "${secret:llm_key}" in str(caught.value)


async def test_a_missing_secret_fails_the_load_naming_it(
    make_app: MakeApp, simulator: SimulatorServer, store_url: str
) -> None:
    """An unset secret: one ConfigError naming the reference and the command that sets it."""
    env = _environ(store_url)
    app_dir = _app(make_app, simulator.base_url)
    with pytest.raises(ConfigError, match=r"\$\{secret:llm_key\}: no such secret"):
        SluiceApp.from_settings(load_settings(app_dir, env))
