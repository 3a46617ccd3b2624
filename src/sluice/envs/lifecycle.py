"""Making and removing environments: ``sluice env up`` and ``sluice env down``.

``up`` reserves the name (:mod:`sluice.envs.records`), then makes the environment's own store
(a PostgreSQL schema or database named ``env_NAME_TOKEN``, or a SQLite file), migrates it by
opening it as the app would, and gives it a Redis key prefix ``env:NAME:TOKEN:`` (or the
in-process KV). ``TOKEN`` is random, so an environment never lands on what another, or an
earlier one of the same name, left. ``down`` removes each of those and then checks that none
is left (:func:`leftovers`): the record goes only when nothing is.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

from sluice.app import build_store, encryption_codec
from sluice.config import AppSettings, load_settings
from sluice.envs import records
from sluice.envs.errors import EnvironmentStateError
from sluice.envs.records import EnvironmentRecord
from sluice.envs.spec import EnvironmentSpec, load_environments
from sluice.store.postgres_schema import quote_ident

_PG_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


async def _pg(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(url, timeout=10)
    except _PG_ERRORS as exc:
        raise EnvironmentStateError(
            f"PostgreSQL at {records.hide_password(url)}: {type(exc).__name__}: {exc}"
        ) from exc


def _redis(url: str) -> aioredis.Redis:
    return aioredis.from_url(url, socket_connect_timeout=5, socket_timeout=10)


def _server(record: EnvironmentRecord) -> str:
    if record.server_url is None:
        raise EnvironmentStateError(f"environment {record.name!r}: no server in its record")
    return record.server_url


def _redis_server(record: EnvironmentRecord) -> str:
    parts = urlsplit(record.kv_url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "prefix"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def environment_settings(
    record: EnvironmentRecord, environ: Mapping[str, str] | None = None
) -> AppSettings:
    """The app's settings inside the environment: its store and KV, everything else as is."""
    env = dict(os.environ if environ is None else environ)
    env["SLUICE_STORE"] = record.store_url
    env["SLUICE_KV"] = record.kv_url
    return load_settings(Path(record.app_dir), env)


def _plan(app_dir: Path, spec: EnvironmentSpec, token: str) -> EnvironmentRecord:
    ident = f"env_{spec.name}_{token}"
    record = EnvironmentRecord(
        name=spec.name, app_dir=str(app_dir), created_at=time.time(),
        store_kind=spec.store_kind, isolate=spec.isolate, release=spec.release,
        mocks=dict(spec.mocks),
    )  # fmt: skip
    if spec.store_kind == "sqlite":
        path = app_dir / records.RECORD_DIR / f"{ident}.db"
        files = tuple(str(path) + suffix for suffix in ("", "-wal", "-shm"))
        record = replace(record, store_url=f"sqlite:///{path}", files=files)
    elif spec.isolate == "database":
        record = replace(
            record, database=ident, server_url=spec.store,
            store_url=_with_query(_with_path(spec.store, f"/{ident}"), schema="sluice"),
        )  # fmt: skip
    else:
        record = replace(
            record, schema=ident, server_url=spec.store,
            store_url=_with_query(spec.store, schema=ident),
        )  # fmt: skip
    if spec.kv != "memory":
        prefix = f"env:{spec.name}:{token}:"
        url = spec.kv if spec.kv_database is None else _with_path(spec.kv, f"/{spec.kv_database}")
        record = replace(record, kv_prefix=prefix, kv_url=_with_query(url, prefix=prefix))
    return record


async def _make(record: EnvironmentRecord, spec: EnvironmentSpec, made: set[str]) -> None:
    """Make each resource, adding its kind to ``made`` just before (a half-made one counts)."""
    if record.schema is not None:
        conn = await _pg(spec.store)
        try:
            if await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", record.schema):
                raise EnvironmentStateError(f"schema {record.schema} exists on the server already")
        finally:
            await conn.close()
    if record.database is not None:
        conn = await _pg(spec.store)
        try:
            made.add("database")
            await conn.execute(f"CREATE DATABASE {quote_ident(record.database)}")
        except _PG_ERRORS as exc:
            raise EnvironmentStateError(f"cannot create database {record.database}: {exc}") from exc
        finally:
            await conn.close()
    settings = environment_settings(record)
    store = build_store(settings, encryption_codec(settings))
    made.update(("schema", "files"))
    await store.open()  # creates the schema or file and applies every migration
    await store.aclose()
    if record.kv_prefix is not None:
        client = _redis(_redis_server(record))
        try:
            # A marker under the prefix: the environment's keys exist from the start, so a
            # leftover prefix is visible (and `env down` has something to prove it removed).
            await client.set(f"{record.kv_prefix}environment", record.name.encode())
        except aioredis.ConnectionError as exc:  # refused: nothing of ours is there
            raise EnvironmentStateError(f"Redis: {type(exc).__name__}: {exc}") from exc
        except aioredis.RedisError as exc:  # a timeout, say: the marker may have landed
            made.add("keys")
            raise EnvironmentStateError(f"Redis: {type(exc).__name__}: {exc}") from exc
        finally:
            await client.aclose()


def _unlink(files: Sequence[str]) -> None:
    for name in files:
        Path(name).unlink(missing_ok=True)


def _existing(files: Sequence[str]) -> list[str]:
    return [name for name in files if Path(name).exists()]


def _resolve(app_dir: Path) -> Path:
    return app_dir.resolve()


async def environment_up(
    app_dir: Path, name: str, environ: Mapping[str, str] | None = None
) -> EnvironmentRecord:
    """Make the environment ``name`` declared by the app; refuse one that exists."""
    app_dir = _resolve(app_dir)
    specs = load_environments(app_dir, environ)
    spec = specs.get(name)
    if spec is None:
        known = ", ".join(sorted(specs)) or "none"
        raise EnvironmentStateError(
            f"{app_dir / 'environments.yaml'}: no environment {name!r} declared (declared: {known})"
        )
    record = _plan(app_dir, spec, secrets.token_hex(4))
    records.reserve(app_dir, record)
    made: set[str] = set()
    try:
        await _make(record, spec, made)
    except BaseException:
        # Take back what was made (only that: a server that refused us has nothing of ours).
        # If that fails too, the record stays (status "making") so that `env down` can finish
        # the job; the first error is the one reported.
        partial = replace(
            record,
            schema=record.schema if "schema" in made else None,
            database=record.database if "database" in made else None,
            files=record.files if "files" in made else (),
            kv_prefix=record.kv_prefix if "keys" in made else None,
        )
        with contextlib.suppress(Exception):
            await _remove(partial)
            records.forget(app_dir, name)
        raise
    ready = replace(record, status="ready")
    records.save(app_dir, ready)
    return ready


async def _remove(record: EnvironmentRecord) -> None:
    if record.schema is not None:
        conn = await _pg(_server(record))
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(record.schema)} CASCADE")
        finally:
            await conn.close()
    if record.database is not None:
        conn = await _pg(_server(record))
        try:
            await conn.execute(
                f"DROP DATABASE IF EXISTS {quote_ident(record.database)} WITH (FORCE)"
            )
        finally:
            await conn.close()
    if record.kv_prefix is not None:
        client = _redis(_redis_server(record))
        try:
            batch: list[bytes] = []
            async for key in client.scan_iter(match=f"{record.kv_prefix}*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    await client.delete(*batch)
                    batch.clear()
            if batch:
                await client.delete(*batch)
        except aioredis.RedisError as exc:
            raise EnvironmentStateError(f"Redis: {type(exc).__name__}: {exc}") from exc
        finally:
            await client.aclose()
    _unlink(record.files)


async def leftovers(record: EnvironmentRecord) -> list[str]:
    """What of the environment still exists: its schema, database, keys or files."""
    found: list[str] = []
    if record.schema is not None:
        conn = await _pg(_server(record))
        try:
            if await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", record.schema):
                found.append(f"schema {record.schema}")
        finally:
            await conn.close()
    if record.database is not None:
        conn = await _pg(_server(record))
        try:
            if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", record.database):
                found.append(f"database {record.database}")
        finally:
            await conn.close()
    if record.kv_prefix is not None:
        client = _redis(_redis_server(record))
        try:
            count = 0
            async for _ in client.scan_iter(match=f"{record.kv_prefix}*", count=500):
                count += 1
        finally:
            await client.aclose()
        if count:
            found.append(f"{count} keys under {record.kv_prefix}")
    found += [f"file {name}" for name in _existing(record.files)]
    return found


@dataclass(frozen=True, slots=True)
class DownReport:
    """What ``env down`` removed (each resource it named) and what is left (nothing, or it
    failed)."""

    name: str
    removed: tuple[str, ...]
    left: tuple[str, ...]


async def environment_down(app_dir: Path, name: str) -> DownReport | None:
    """Remove every trace of ``name``; None when there is no such environment."""
    app_dir = _resolve(app_dir)
    record = records.load(app_dir, name)
    if record is None:
        return None
    before = await leftovers(record)
    await _remove(record)
    left = await leftovers(record)
    if left:
        raise EnvironmentStateError(
            f"environment {name!r} is not fully removed: {'; '.join(left)} (run env down again)"
        )
    records.forget(app_dir, name)
    return DownReport(name, tuple(before), ())
