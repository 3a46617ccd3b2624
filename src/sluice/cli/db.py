"""Database commands: ``sluice db upgrade`` applies pending store migrations.

Stores migrate themselves when they open, so this command is for deployments that want the
schema in place before any gateway or worker starts (one step of a rollout). It is safe to run
from several hosts at once: migrations serialise on a lock in the database.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Annotated

import typer

from sluice.app import build_store
from sluice.config import AppSettings, load_settings
from sluice.errors import SluiceError, StoreError

db_app = typer.Typer(help="Manage the store's database schema.", no_args_is_help=True)


async def schema_version(settings: AppSettings) -> int:
    """The schema version the store holds now, read without changing anything (0: none)."""
    if settings.store.startswith("sqlite:///"):
        return _sqlite_version(settings.sqlite_path())
    return await _postgres_version(settings.store)


def _sqlite_version(path: Path) -> int:
    if not path.exists():
        return 0
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    except sqlite3.OperationalError:  # a file without the table: nothing applied yet
        return 0
    finally:
        db.close()
    return int(row[0] or 0)


async def _postgres_version(url: str) -> int:
    import asyncpg

    from sluice.store.postgres import parse_url
    from sluice.store.postgres_schema import schema_version as pg_version

    dsn, schema = parse_url(url)
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise StoreError(f"cannot connect to the store: {exc}") from exc
    try:
        return await pg_version(conn, schema)
    finally:
        await conn.close()


def upgrade_summary(before: int, after: int, where: str) -> str:
    """What ``db upgrade`` did, in one line."""
    if before == 0:
        return f"created the store schema (version {after}): {where}"
    if before < after:
        return f"upgraded the store schema from version {before} to {after}: {where}"
    return f"store schema is up to date (version {after}): {where}"


@db_app.command("upgrade")
def upgrade(
    app_dir: Annotated[
        Path, typer.Option("--app", help="App directory (holds sluice.yaml).")
    ] = Path(),
) -> None:
    """Create the store's tables or bring them to this version of Sluice, and say which."""

    async def go() -> tuple[int, int, str]:
        settings = load_settings(app_dir)
        before = await schema_version(settings)
        store = build_store(settings)
        await store.open()  # opening applies pending migrations under the store's lock
        await store.aclose()
        return before, await schema_version(settings), settings.store

    try:
        before, after, url = asyncio.run(go())
    except SluiceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    # Never echo a password that the URL may carry.
    typer.echo(upgrade_summary(before, after, url.split("@")[-1]))


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group to the ``sluice`` command."""
    app.add_typer(db_app, name="db")
