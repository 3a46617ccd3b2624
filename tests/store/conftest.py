"""Every Store implementation runs the same contract suite.

PostgreSQL is reached at ``SLUICE_TEST_POSTGRES`` (default: the local server). A missing server
fails the tests rather than skipping them: CI must not pass without having run them. Each test
gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from sluice.store.base import Store
from sluice.store.postgres import PostgresStore
from sluice.store.postgres_schema import drop_schema, quote_ident
from sluice.store.sqlite import SqliteStore

POSTGRES_URL = os.environ.get("SLUICE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_schema_url(schema: str) -> str:
    """The test server's URL, pointing the store at ``schema``."""
    sep = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{sep}schema={schema}"


def new_schema() -> str:
    """A schema name no other test uses."""
    return f"t_{uuid.uuid4().hex[:16]}"


async def drop_test_schema(schema: str) -> None:
    """Remove a schema created by a test."""
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await drop_schema(conn, schema)
    finally:
        await conn.close()


async def schema_text(schema: str) -> str:
    """Every row of every table of ``schema`` as PostgreSQL renders it (bytea as hex)."""
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        out = []
        for (table,) in tables:
            name = f"{quote_ident(schema)}.{quote_ident(table)}"
            out += [r[0] for r in await conn.fetch(f"SELECT t::text FROM {name} t")]
        return "\n".join(out)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open, empty store of each kind."""
    impl: SqliteStore | PostgresStore
    schema = None
    if request.param == "postgres":
        schema = new_schema()
        impl = PostgresStore(postgres_schema_url(schema))
    else:
        impl = SqliteStore(tmp_path / "contract.db")
    await impl.open()
    try:
        yield impl
    finally:
        await impl.aclose()
        if schema is not None:
            await drop_test_schema(schema)


@pytest.fixture
async def store_pg() -> AsyncIterator[PostgresStore]:
    """An open, empty PostgreSQL store in a schema of its own."""
    schema = new_schema()
    impl = PostgresStore(postgres_schema_url(schema))
    await impl.open()
    try:
        yield impl
    finally:
        await impl.aclose()
        await drop_test_schema(schema)
