"""PostgreSQL-only behaviour: concurrent migrations, wake-ups, group commit, URLs."""

from __future__ import annotations

import asyncio
import os
import time

import asyncpg
import pytest

from sluice.errors import ConfigError
from sluice.guard.crypto import AesGcmCodec, Keyring
from sluice.store.base import Completion, NewEvent
from sluice.store.postgres import PostgresStore, parse_url
from sluice.store.postgres_schema import MIGRATIONS, schema_version
from tests.store.conftest import POSTGRES_URL, drop_test_schema, new_schema, postgres_schema_url


def _event(eid: str, pool: str = "p0") -> NewEvent:
    now = time.time()
    return NewEvent(eid, "wf", "1", "t1", b"{}", pool, now, now + 60)


class TestMigrations:
    async def test_many_processes_migrating_at_once_apply_each_migration_once(self) -> None:
        """Stores opening together on a new schema all succeed; one version row per migration."""
        schema = new_schema()
        stores = [PostgresStore(postgres_schema_url(schema), listen=False) for _ in range(4)]
        try:
            await asyncio.gather(*(s.open() for s in stores))
            conn = await asyncpg.connect(POSTGRES_URL)
            try:
                assert await schema_version(conn, schema) == len(MIGRATIONS)
                rows = await conn.fetchval(f"SELECT count(*) FROM {schema}.schema_version")
                assert rows == len(MIGRATIONS)
            finally:
                await conn.close()
        finally:
            await asyncio.gather(*(s.aclose() for s in stores))
            await drop_test_schema(schema)


class TestWakeUps:
    async def test_another_process_accept_wakes_a_waiting_worker(self) -> None:
        """wait_for_work returns soon after another store commits work for that pool only."""
        schema = new_schema()
        url = postgres_schema_url(schema)
        async with PostgresStore(url) as waiter, PostgresStore(url, listen=False) as writer:
            seen: list[str | None] = []
            unsubscribe = waiter.on_work(seen.append)
            assert await waiter.wait_for_work("p0", 0.05) is False
            # A generous wait: True means the notification woke it (a timeout answers False).
            waiting = asyncio.create_task(waiter.wait_for_work("p0", 30))
            other = asyncio.create_task(waiter.wait_for_work("p9", 0.5))
            await asyncio.sleep(0)  # both tasks run up to their wait: registered as waiters
            await writer.insert_event(_event("e1"))
            assert await waiting is True
            assert await other is False
            assert "p0" in seen
            unsubscribe()
        await drop_test_schema(schema)

    async def test_the_listener_reconnects_after_its_connection_is_killed(self) -> None:
        """A terminated LISTEN connection is replaced and notifications flow again."""
        schema = new_schema()
        url = postgres_schema_url(schema)
        async with PostgresStore(url) as waiter, PostgresStore(url, listen=False) as writer:
            reconnected = asyncio.Event()
            # After a reconnect every pool is woken once (pool None): lost notifications.
            waiter.on_work(lambda pool: reconnected.set() if pool is None else None)
            conn = await asyncpg.connect(POSTGRES_URL)
            try:
                killed = await conn.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE query LIKE 'LISTEN%' AND query LIKE $1",
                    f"%{waiter.channel}%",
                )
            finally:
                await conn.close()
            assert killed == 1
            await asyncio.wait_for(reconnected.wait(), 30)
            waiting = asyncio.create_task(waiter.wait_for_work("p0", 30))
            await asyncio.sleep(0)  # the task runs up to its wait: registered as a waiter
            await writer.insert_event(_event("e1"))
            assert await waiting is True
        await drop_test_schema(schema)


class TestGroupCommit:
    async def test_concurrent_writes_share_transactions(self, store_pg: PostgresStore) -> None:
        """Hundreds of concurrent accepts and completions commit in far fewer transactions."""
        await asyncio.gather(*(store_pg.insert_event(_event(f"e{i:03}")) for i in range(300)))
        assert store_pg.depths["p0"] == 300
        jobs = await store_pg.claim("p0", 300, "w", 30)
        now = time.time()
        done = await asyncio.gather(
            *(store_pg.complete(Completion(j, "s0", b"{}", now, now, "p1")) for j in jobs)
        )
        assert all(done)
        assert store_pg.depths == {"p0": 0, "p1": 300}
        assert await store_pg.queue_depths() == {"p1": 300}
        batches = store_pg._inserts.batches + store_pg._completions.batches
        assert batches < 100

    async def test_a_duplicate_in_a_batch_fails_alone(self, store_pg: PostgresStore) -> None:
        """One duplicate event id among concurrent accepts fails; the others are written."""
        await store_pg.insert_event(_event("dup"))
        ids = [f"n{i}" for i in range(20)] + ["dup"]
        results = await asyncio.gather(
            *(store_pg.insert_event(_event(i)) for i in ids), return_exceptions=True
        )
        assert [type(r).__name__ for r in results].count("StoreError") == 1
        assert await store_pg.queue_depths() == {"p0": 21}


class TestUrl:
    def test_schema_is_taken_from_the_url(self) -> None:
        """``?schema=`` picks the schema and is not passed on to the driver."""
        dsn, schema = parse_url("postgresql://u@h:5432/db?schema=app_1&sslmode=disable")
        assert (dsn, schema) == ("postgresql://u@h:5432/db?sslmode=disable", "app_1")
        assert parse_url("postgres://h/db")[1] == "sluice"

    def test_bad_schema_names_are_refused(self) -> None:
        """A schema name that is not a plain lower-case SQL name is a configuration error."""
        with pytest.raises(ConfigError, match="schema"):
            parse_url("postgresql://h/db?schema=x;drop")


class TestReencode:
    async def test_rotating_the_key_rewrites_every_payload(self) -> None:
        """After a key rotation every stored payload is resealed with the new key and reads back."""
        key_a, key_b = os.urandom(32), os.urandom(32)
        schema = new_schema()
        url = postgres_schema_url(schema)
        try:
            old = AesGcmCodec(Keyring({"a": key_a}, "a"))
            async with PostgresStore(url, codec=old, listen=False) as store:
                await store.insert_event(_event("e1"))
                (job,) = await store.claim("p0", 1, "w", 30)
                now = time.time()
                await store.complete(Completion(job, "s0", b'{"y": 1}', now, now, "p1"))
            new = AesGcmCodec(Keyring({"a": key_a, "b": key_b}, "b"))
            async with PostgresStore(url, codec=new, listen=False) as store:
                # event input, step output, and the next job's input
                assert await store.reencode_payloads(batch=1) == 3
                assert await store.reencode_payloads() == 0
                record = await store.get_event("e1")
                assert (record.input, record.steps[0].output) == (b"{}", b'{"y": 1}')
        finally:
            await drop_test_schema(schema)
