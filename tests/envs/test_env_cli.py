"""``sluice env`` and ``sluice fixtures export`` end to end, on PostgreSQL and Redis.

Real events run through the app on its own store; the export masks them; an environment is
made, seeded, inspected and taken down, and every resource is checked on the servers
themselves (the schema in ``pg_namespace``, keys by SCAN, files on disk).
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from typer.testing import CliRunner

from sluice.app import build_store, encryption_codec
from sluice.cli.main import build_app
from sluice.envs import EnvironmentRecord, environment_settings, read_fixtures
from sluice.envs.records import record_path
from sluice.guard.pii import PiiMasker
from sluice.guard.recognizers import PiiType
from sluice.kv.settings import build_kv
from sluice.models.splits import read_examples
from sluice.store.base import EventRecord, QuarantineItem
from sluice.store.postgres_schema import MIGRATIONS
from sluice.testing import free_port
from tests.envs.conftest import WEBHOOK_SECRET, EchoApp, environments_yaml, run_events
from tests.kv.conftest import REDIS_URL
from tests.store.conftest import POSTGRES_URL, schema_text

FIXTURES_KEY = "ab" * 32
EMAIL = "ada.lovelace@analytical.example.org"
PHONE = "(415) 555-2671"
CARD = "4111 1111 1111 1111"
IBAN = "GB82 WEST 1234 5698 7654 32"
SSN = "078-05-1120"
API_KEY = "sk_live_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
BEARER = "Bearer eyJhbGciOi.J9.kZXJpdmVkLWZyb20tYS1zZWNyZXQ"
INPUTS = [
    {
        "text": f"Please write to {EMAIL} or call {PHONE}",
        "email": EMAIL,
        "api_key": API_KEY,
        "category": "contact",
    },
    {
        "text": f"card {CARD} was charged twice, refund to {IBAN}",
        "email": EMAIL,
        "category": "refund",
    },
    {
        "text": f"my SSN is {SSN}; auth header was {BEARER}",
        "email": "grace@hopper.example.net",
        "category": "identity",
    },
]
PII = (EMAIL, PHONE, CARD, IBAN, SSN, "grace@hopper.example.net", "4111111111111111",
       "GB82WEST12345698765432", "4155552671")  # fmt: skip
SECRETS = (API_KEY, "eyJhbGciOi", WEBHOOK_SECRET)
RAW_WEBHOOK = orjson.dumps(
    {"ticket": {"body": f"no text field; reach me at {EMAIL}", "sig": WEBHOOK_SECRET}}
)


def sluice(*args: str, env: dict[str, str] | None = None) -> Any:
    """Run the command in process; stdout and stderr apart."""
    return CliRunner().invoke(build_app(), list(args), env=env)


async def _quarantine(app: EchoApp) -> None:
    settings = environment_settings(
        EnvironmentRecord("x", str(app.app_dir), 0.0, "postgres", "schema", app.store_url)
    )
    store = build_store(settings, encryption_codec(settings))
    await store.open()
    try:
        item = QuarantineItem("q_1", "helpdesk", "echo", "acme", f"$.text: missing ({EMAIL})",
                              ("$.text: missing",), RAW_WEBHOOK, time.time())  # fmt: skip
        await store.quarantine(item)
    finally:
        await store.aclose()


def _export(app: EchoApp, out: Path) -> Any:
    env = {**app.environ, "SLUICE_FIXTURES_KEY": FIXTURES_KEY}
    args = ["fixtures", "export", "--app", str(app.app_dir), "--since", "1h", "--mask"]
    return sluice(*args, "--out", str(out), env=env)


async def _env_rows(app_dir: Path, name: str) -> tuple[list[EventRecord], list[QuarantineItem]]:
    from sluice.envs import records

    record = records.load(app_dir, name)
    assert record is not None
    settings = environment_settings(record)
    store = build_store(settings, encryption_codec(settings))
    await store.open()
    try:
        events = [await store.get_event(e.id) for e in await store.list_events(limit=1000)]
        return events, await store.list_quarantine(1000)
    finally:
        await store.aclose()


async def _on_servers(record: dict[str, Any]) -> dict[str, Any]:
    """What PostgreSQL and Redis hold of an environment, asked directly."""
    conn = await asyncpg.connect(POSTGRES_URL)
    client = aioredis.from_url(REDIS_URL.rsplit("/", 1)[0] + f"/{_redis_db(record)}")
    try:
        schema = record["schema"]
        version = None
        if schema and await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
            version = await conn.fetchval(f'SELECT max(version) FROM "{schema}".schema_version')
        database = record["database"] and await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", record["database"]
        )
        keys = []
        if record["kv_prefix"]:
            keys = [k async for k in client.scan_iter(match=record["kv_prefix"] + "*")]
        return {"schema_version": version, "database": bool(database), "keys": keys}
    finally:
        await conn.close()
        await client.aclose()


def _redis_db(record: dict[str, Any]) -> str:
    match = re.search(r"/(\d+)(?:\?|$)", record["kv_url"])
    return match.group(1) if match else "0"


def test_env_up_seed_down_end_to_end(echo_app: EchoApp, tmp_path: Path) -> None:
    """Export masked fixtures from real events, make an environment, seed it, take it down."""
    app_dir = echo_app.app_dir
    ids = asyncio.run(run_events(echo_app, INPUTS))
    asyncio.run(_quarantine(echo_app))
    out = tmp_path / "fixtures.jsonl"
    exported = _export(echo_app, out)
    assert exported.exit_code == 0, exported.output
    assert "3 events, 1 quarantine entries" in exported.stdout
    assert "exporting 4/4" in exported.stderr  # progress on standard error

    up = sluice("env", "up", str(app_dir), "pg", "--json")
    assert up.exit_code == 0, up.output
    record = orjson.loads(up.stdout)
    assert record["status"] == "ready"
    assert record["release"] == "r1"
    assert record["mocks"] == {"payments": {"status": 200}}
    assert record["schema"].startswith("env_pg_")
    assert record["kv_prefix"].startswith("env:pg:")
    servers = asyncio.run(_on_servers(record))
    assert servers["schema_version"] == len(MIGRATIONS)  # made and migrated
    assert servers["keys"] == [f"{record['kv_prefix']}environment".encode()]

    again = sluice("env", "up", str(app_dir), "pg")
    assert again.exit_code != 0
    assert "exists already" in again.stderr

    seeded = sluice("env", "seed", str(app_dir), "pg", "--fixtures", str(out), "--quiet")
    assert seeded.exit_code == 0, seeded.output
    assert "3 events (6 step results), 1 quarantine entries; 0 already there" in seeded.stdout
    # Seeding again adds nothing: the ids are there.
    repeat = sluice("env", "seed", str(app_dir), "pg", "--fixtures", str(out), "--quiet")
    assert "0 events (0 step results), 0 quarantine entries; 4 already there" in repeat.stdout

    events, quarantine = asyncio.run(_env_rows(app_dir, "pg"))
    assert sorted(e.id for e in events) == sorted(ids)
    assert [q.id for q in quarantine] == ["q_1"]
    for event in events:
        assert event.state.value == "done"
        assert len(event.steps) == 2
        text = event.input + (event.result or b"") + b"".join(s.output for s in event.steps)
        assert not any(value.encode() in text for value in PII + SECRETS)
    # The environment's store seals what it holds, as the app's does: no fake in plain text.
    fake_email = orjson.loads(events[0].input)["email"]
    assert "@example." in fake_email
    assert fake_email not in asyncio.run(schema_text(record["schema"]))

    # The app's suites run against the environment: their runs land in its store.
    tested = sluice("env", "test", str(app_dir), "pg", "--json")
    assert tested.exit_code == 0, tested.output
    verdict = orjson.loads(tested.stdout)
    assert verdict["passed"] is True
    assert verdict["release"] == "r1"
    assert [g["cases"] for g in verdict["groups"]] == [2]
    after, _ = asyncio.run(_env_rows(app_dir, "pg"))
    assert len(after) == len(events) + 2
    # A golden expectation the app does not meet fails the command, naming the case.
    golden = app_dir / "tests" / "golden"
    (golden / "echo.v2.yaml").write_text(
        (golden / "echo.v1.yaml").read_text().replace("version: 1", "version: 2")
        .replace("len: 8", "len: 9")
    )  # fmt: skip
    failed = sluice("env", "test", str(app_dir), "pg")
    assert failed.exit_code == 1, failed.output
    assert "short" in failed.stdout
    assert "len" in failed.stdout

    # The seeded events as a labelled data set (the four runs of the two suite runs carry
    # no label).
    csv_path = tmp_path / "labelled.csv"
    labelled = sluice("env", "labelled", str(app_dir), "pg", "--out", str(csv_path))
    assert labelled.exit_code == 0, labelled.output
    assert "3 rows; 4 events skipped" in labelled.stdout
    examples = read_examples(csv_path)
    assert sorted(e.label for e in examples) == ["contact", "identity", "refund"]
    assert not any(value in e.text for e in examples for value in PII + SECRETS)

    listed = orjson.loads(sluice("env", "list", str(app_dir), "--json").stdout)
    status = {row["name"]: row["status"] for row in listed}
    assert status == {"pg": "ready", "pg2": "down", "pgdb": "down", "lite": "down"}
    shown = orjson.loads(sluice("env", "show", str(app_dir), "pg", "--json").stdout)
    assert shown["schema"] == record["schema"]
    assert [s["events"] for s in shown["seeded"]] == [3, 0]

    down = sluice("env", "down", str(app_dir), "pg")
    assert down.exit_code == 0, down.output
    assert "nothing left" in down.stdout
    gone = asyncio.run(_on_servers(record))
    assert gone == {"schema_version": None, "database": False, "keys": []}
    assert not record_path(app_dir, "pg").exists()

    unknown = sluice("env", "down", str(app_dir), "pg")
    assert unknown.exit_code == 0
    assert "nothing to do" in unknown.stdout


def test_masked_export_keeps_no_pii_no_secret_no_ciphertext(
    echo_app: EchoApp, tmp_path: Path
) -> None:
    """The exported file's bytes hold none of the PII or secrets that went in, and nothing
    sealed; the same value maps to the same fake (the join between two events survives), of
    the same kind, and a second export with the same key gives the same fakes."""
    asyncio.run(run_events(echo_app, INPUTS))
    asyncio.run(_quarantine(echo_app))
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert _export(echo_app, first).exit_code == 0
    assert _export(echo_app, second).exit_code == 0
    data = first.read_bytes()
    for value in PII + SECRETS:
        assert value.encode() not in data, value
    assert b"SLE" not in data
    assert b"[removed]" in data
    # The app's store did hold them, sealed (none in plain text on the server): the export
    # decrypted before masking, or it could not have found the e-mail to replace.
    at_rest = asyncio.run(schema_text(echo_app.schema))
    assert EMAIL not in at_rest
    assert "\\x534c45" in at_rest
    header, rows = read_fixtures(first)
    assert header.masked
    events = [row for row in rows if isinstance(row, EventRecord)]
    inputs = [orjson.loads(e.input) for e in sorted(events, key=lambda e: e.created_at)]
    assert inputs[0]["email"] == inputs[1]["email"] != inputs[2]["email"]
    assert inputs[0]["api_key"] == "[removed]"
    masker = PiiMasker()
    kinds = [e.type for e in masker.detect(inputs[0]["text"])]
    assert kinds == [PiiType.EMAIL, PiiType.PHONE]
    assert [e.type for e in masker.detect(inputs[1]["text"])] == [PiiType.CARD, PiiType.IBAN]
    # The e-mail in the text and in the field are one value: one fake for both.
    assert inputs[0]["email"] in inputs[0]["text"]
    # Unmasked, the PII stays (with a warning), but secrets and ciphertext still go.
    plain = tmp_path / "plain.jsonl"
    args = ["fixtures", "export", "--app", str(echo_app.app_dir), "--since", "1h"]
    unmasked = sluice(*args, "--out", str(plain), env=echo_app.environ)
    assert unmasked.exit_code == 0, unmasked.output
    assert "not masked" in unmasked.stderr
    plain_data = plain.read_bytes()
    assert EMAIL.encode() in plain_data
    assert not any(secret.encode() in plain_data for secret in SECRETS)
    assert b"SLE" not in plain_data
    # Line 1, the header, says when each was made; every row after it is the same.
    assert first.read_bytes().split(b"\n")[1:] == second.read_bytes().split(b"\n")[1:]


def test_two_environments_on_one_server_do_not_see_each_other(
    echo_app: EchoApp, tmp_path: Path
) -> None:
    """Two environments on the same PostgreSQL and Redis: what one is seeded with, or writes
    to its KV, the other does not see."""
    app_dir = echo_app.app_dir
    asyncio.run(run_events(echo_app, INPUTS[:2]))
    out = tmp_path / "f.jsonl"
    assert _export(echo_app, out).exit_code == 0
    # --limit bounds the export, and says it did.
    args = ["fixtures", "export", "--app", str(app_dir), "--since", "1h", "--limit", "1"]
    limited = sluice(*args, "--out", str(tmp_path / "one.jsonl"), env=echo_app.environ)
    assert "1 events" in limited.stdout
    assert "stopped at --limit 1" in limited.stderr
    try:
        for name in ("pg", "pg2"):
            made = sluice("env", "up", str(app_dir), name)
            assert made.exit_code == 0, made.output
        # A file cut short seeds nothing, and says where.
        cut = tmp_path / "cut.jsonl"
        cut.write_bytes(b"".join(out.read_bytes().splitlines(keepends=True)[:-1]))
        refused = sluice("env", "seed", str(app_dir), "pg", "--fixtures", str(cut))
        assert refused.exit_code == 2
        assert f"{cut}: no trailer line" in refused.stderr
        assert asyncio.run(_env_rows(app_dir, "pg")) == ([], [])
        assert sluice("env", "seed", str(app_dir), "pg", "--fixtures", str(out)).exit_code == 0
        seen_pg, _ = asyncio.run(_env_rows(app_dir, "pg"))
        seen_pg2, _ = asyncio.run(_env_rows(app_dir, "pg2"))
        assert len(seen_pg) == 2
        assert seen_pg2 == []
        assert asyncio.run(_kv_isolated(app_dir))
        shown = [orjson.loads(sluice("env", "show", str(app_dir), n).stdout) for n in ("pg", "pg2")]
        assert len(asyncio.run(_on_servers(shown[0]))["keys"]) == 2  # the marker and ours
    finally:
        for name in ("pg", "pg2"):
            assert sluice("env", "down", str(app_dir), name).exit_code == 0
    for record in shown:  # the key the app wrote went with its environment
        assert asyncio.run(_on_servers(record)) == {
            "schema_version": None, "database": False, "keys": []
        }  # fmt: skip


async def _kv_isolated(app_dir: Path) -> bool:
    from sluice.envs import records

    kvs = []
    for name in ("pg", "pg2"):
        record = records.load(app_dir, name)
        assert record is not None
        kv = build_kv(environment_settings(record).kv)
        await kv.open()
        kvs.append(kv)
    try:
        await kvs[0].set("shared-name", b"from pg")
        return await kvs[0].get("shared-name") == b"from pg" and (
            await kvs[1].get("shared-name") is None
        )
    finally:
        for kv in kvs:
            await kv.aclose()


def test_database_isolation_and_sqlite_leave_nothing_behind(echo_app: EchoApp) -> None:
    """A database of its own (and a Redis database number), and a SQLite file: made, then
    removed without a trace."""
    app_dir = echo_app.app_dir
    made = {}
    try:
        for name in ("pgdb", "lite"):
            up = sluice("env", "up", str(app_dir), name, "--json")
            assert up.exit_code == 0, up.output
            made[name] = orjson.loads(up.stdout)
        pgdb, lite = made["pgdb"], made["lite"]
        assert asyncio.run(_on_servers(pgdb))["database"] is True
        assert "/1?" in pgdb["kv_url"]
        assert Path(lite["files"][0]).is_file()
        assert lite["kv_url"] == "memory://"
    finally:
        for name in made:
            assert sluice("env", "down", str(app_dir), name).exit_code == 0
    assert asyncio.run(_on_servers(made["pgdb"])) == {
        "schema_version": None, "database": False, "keys": []
    }  # fmt: skip
    assert not any(Path(f).exists() for f in made["lite"]["files"])


def test_a_failed_up_takes_back_what_it_made(echo_app: EchoApp) -> None:
    """The store is made and migrated, then Redis cannot be reached: the schema is dropped
    again, no record stays, and the name can be used once the server is fixed."""
    app_dir = echo_app.app_dir
    closed = f"redis://127.0.0.1:{free_port()}/0"
    (app_dir / "environments.yaml").write_text(
        environments_yaml(broken=f"    store: {POSTGRES_URL}\n    kv: {closed}\n")
    )
    failed = sluice("env", "up", str(app_dir), "broken")
    assert failed.exit_code != 0
    assert "Redis" in failed.stderr
    assert not record_path(app_dir, "broken").exists()
    assert asyncio.run(_schemas_like("env_broken_")) == []
    (app_dir / "environments.yaml").write_text(
        environments_yaml(broken=f"    store: {POSTGRES_URL}\n    kv: {REDIS_URL}\n")
    )
    assert sluice("env", "up", str(app_dir), "broken").exit_code == 0
    assert sluice("env", "down", str(app_dir), "broken").exit_code == 0


async def _schemas_like(prefix: str) -> list[str]:
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        rows = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", prefix
        )
        return [row[0] for row in rows]
    finally:
        await conn.close()
