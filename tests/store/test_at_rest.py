"""Payload-derived text at rest: rows written before sealing still read, and rotate seals them.

A database at schema version 3 (errors, reasons and problems stored plain, idempotency keys
verbatim, payloads already encrypted) is opened by this release with encryption on: the
migration runs, every old row reads as before, an old idempotency key still answers its
duplicate, and ``reencode_payloads`` (``sluice encryption rotate``) leaves no plain PII.
"""

from __future__ import annotations

import base64
import sqlite3
import time
from pathlib import Path

import asyncpg
import orjson
import pytest

from sluice.guard.crypto import AesGcmCodec, Keyring
from sluice.store import postgres_schema, sqlite_schema
from sluice.store.at_rest import open_text, seal_text
from sluice.store.base import EventState, IdempotencyClaim, NewEvent, Store
from sluice.store.codec import IdentityCodec
from sluice.store.postgres import PostgresStore
from sluice.store.postgres_schema import quote_ident
from sluice.store.sqlite import SqliteStore
from tests.store.conftest import (
    POSTGRES_URL,
    drop_test_schema,
    new_schema,
    postgres_schema_url,
    schema_text,
)

EMAIL = "jane.doe@example.com"
ERROR = f"step 'parse' raised ValueError: could not parse {EMAIL} (not retryable)"
REASON = f"amount: '{EMAIL}' is not of type 'integer'"
KEY = f"api:wf:{EMAIL}"
CODEC = AesGcmCodec(Keyring({"k1": base64.b64decode(base64.b64encode(b"a" * 32))}, "k1"))


def _leaks(text: str) -> bool:
    """Whether ``text`` holds the e-mail as text or as the hex of its bytes (bytea)."""
    return EMAIL in text or EMAIL.encode().hex() in text.lower()


def _old_sqlite(path: Path) -> None:
    """A version-3 SQLite database holding one dead event, its dead job, a quarantine entry
    and an idempotency key, written the way releases before sealing wrote them."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, migration in enumerate(sqlite_schema.MIGRATIONS[:3], start=1):
        for statement in migration.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO schema_version(version) VALUES (?)", (number,))
    now, payload = time.time(), CODEC.encode(b"{}")
    conn.execute(
        "INSERT INTO events(id, workflow, version, tenant, state, input, error, created_at,"
        " deadline) VALUES ('e1', 'wf', '1', 't1', 'dead', ?, ?, ?, ?)",
        (payload, ERROR, now, now + 60),
    )
    conn.execute(
        "INSERT INTO jobs(event_id, step, pool, workflow, version, tenant, state, input,"
        " ready_at, run_at, deadline, last_error) VALUES ('e1', 0, 'p0', 'wf', '1', 't1',"
        " 'dead', ?, ?, ?, ?, ?)",
        (payload, now, now, now + 60, ERROR),
    )
    conn.execute(
        "INSERT INTO quarantine VALUES ('q1', 'api', 'wf', 't1', ?, ?, ?, ?)",
        (REASON, orjson.dumps([REASON]).decode(), payload, now),
    )
    conn.execute("INSERT INTO idempotency VALUES ('t1', ?, 'h', 'e1', 'accepted', ?)", (KEY, now))
    conn.close()


async def _old_postgres(schema: str) -> None:
    """The same rows in a version-3 PostgreSQL schema."""
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        ident = quote_ident(schema)
        await conn.execute(f"CREATE SCHEMA {ident}")
        await conn.execute(f"SET search_path TO {ident}")
        await conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        for number, migration in enumerate(postgres_schema.MIGRATIONS[:3], start=1):
            await conn.execute(migration)
            await conn.execute("INSERT INTO schema_version(version) VALUES ($1)", number)
        now, payload = time.time(), CODEC.encode(b"{}")
        await conn.execute(
            "INSERT INTO events(id, workflow, version, tenant, state, input, error, created_at,"
            " deadline) VALUES ('e1', 'wf', '1', 't1', 'dead', $1, $2, $3, $4)",
            payload, ERROR, now, now + 60,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO jobs(event_id, step, pool, workflow, version, tenant, state, input,"
            " ready_at, run_at, deadline, last_error) VALUES ('e1', 0, 'p0', 'wf', '1', 't1',"
            " 'dead', $1, $2, $2, $3, $4)",
            payload, now, now + 60, ERROR,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO quarantine VALUES ('q1', 'api', 'wf', 't1', $1, $2, $3, $4)",
            REASON, [REASON], payload, now,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO idempotency VALUES ('t1', $1, 'h', 'e1', 'accepted', $2)", KEY, now
        )
    finally:
        await conn.close()


async def _reads_as_before(store: Store) -> None:
    record = await store.get_event("e1")
    assert (record.state, record.error, record.input) == (EventState.DEAD, ERROR, b"{}")
    item = await store.get_quarantined("q1")
    assert (item.reason, item.problems) == (REASON, (REASON,))
    # The key was stored verbatim; after the migration it is found by its digest.
    now = time.time()
    event = NewEvent("e2", "wf", "1", "t1", b"{}", "p0", now, now + 60)
    receipt = await store.insert_event(event, IdempotencyClaim("t1", KEY, "h"))
    assert (receipt.event_id, receipt.duplicate) == ("e1", True)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_old_rows_read_and_rotate_seals_them(backend: str, tmp_path: Path) -> None:
    """Migration 4 keeps old rows readable; rotate then leaves no plain PII behind."""
    schema = new_schema()
    db = tmp_path / "old.db"
    store: SqliteStore | PostgresStore
    if backend == "sqlite":
        _old_sqlite(db)
        store = SqliteStore(db, codec=CODEC)
    else:
        await _old_postgres(schema)
        store = PostgresStore(postgres_schema_url(schema), codec=CODEC, listen=False)
    try:
        async with store:
            await _reads_as_before(store)
            # events.error, jobs.last_error, quarantine.reason and .problems
            assert await store.reencode_payloads(batch=1) == 4
            assert await store.reencode_payloads() == 0
            await _reads_as_before(store)
        if backend == "sqlite":
            files = [db, db.with_name("old.db-wal"), db.with_name("old.db-shm")]
            raw = b"".join(p.read_bytes() for p in files if p.exists())
            assert EMAIL.encode() not in raw
        else:
            assert not _leaks(await schema_text(schema))
    finally:
        if backend == "postgres":
            await drop_test_schema(schema)


def test_sealed_text_round_trips_with_either_codec() -> None:
    """Sealed with the AES codec it is ciphertext; with the identity codec, UTF-8."""
    sealed = seal_text(CODEC, ERROR)
    assert EMAIL.encode() not in sealed
    assert open_text(CODEC, sealed) == ERROR
    assert open_text(IdentityCodec(), seal_text(IdentityCodec(), ERROR)) == ERROR
    assert open_text(CODEC, ERROR.encode()) == ERROR  # plain bytes from before sealing
    assert open_text(CODEC, None) is None
