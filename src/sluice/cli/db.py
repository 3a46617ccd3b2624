"""Database commands: ``sluice db upgrade`` applies pending store migrations.

Stores migrate themselves when they open, so this command is for deployments that want the
schema in place before any gateway or worker starts (one step of a rollout). It is safe to run
from several hosts at once: migrations serialise on a lock in the database.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from sluice.app import build_store
from sluice.config import load_settings
from sluice.errors import SluiceError

db_app = typer.Typer(help="Manage the store's database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(
    app_dir: Annotated[
        Path, typer.Option("--app", help="App directory (holds sluice.yaml).")
    ] = Path(),
) -> None:
    """Create the store's tables or bring them to this version of Sluice."""

    async def go() -> str:
        settings = load_settings(app_dir)
        store = build_store(settings)
        await store.open()  # opening applies pending migrations under the store's lock
        await store.aclose()
        return settings.store

    try:
        url = asyncio.run(go())
    except SluiceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    # Never echo a password that the URL may carry.
    typer.echo(f"store schema is up to date: {url.split('@')[-1]}")


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group to the ``sluice`` command."""
    app.add_typer(db_app, name="db")
