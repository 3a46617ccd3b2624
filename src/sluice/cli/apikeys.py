"""``sluice apikey create/list/revoke``: API keys, each mapped to a tenant."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from sluice.app import SluiceApp
from sluice.cli.common import AppDir, with_store
from sluice.ingress.apikeys import create_api_key

apikey_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


@apikey_app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for.")],
    role: Annotated[list[str] | None, typer.Option(help="Role (repeatable).")] = None,
    app_dir: AppDir = Path(),
) -> None:
    """Create a key and print it once; only its hash is stored."""

    async def go(app: SluiceApp) -> str:
        record, key = await create_api_key(app.store, tenant, role or ["runner"])
        note = "store it now, it is not shown again"
        typer.echo(f"created key {record.id} for tenant {tenant}; {note}:", err=True)
        return key

    typer.echo(with_store(app_dir, go))


@apikey_app.command("list")
def list_keys(app_dir: AppDir = Path()) -> None:
    """List keys: id, tenant, roles, created, revoked."""

    async def go(app: SluiceApp) -> None:
        for k in await app.store.list_api_keys():
            typer.echo(f"{k.id}  {k.tenant}  {','.join(k.roles)}  created {_when(k.created_at)}"
                       f"  revoked {_when(k.revoked_at)}")  # fmt: skip

    with_store(app_dir, go)


@apikey_app.command("revoke")
def revoke(key_id: str, app_dir: AppDir = Path()) -> None:
    """Revoke a key (running servers stop accepting it within their cache time, 30 s)."""

    async def go(app: SluiceApp) -> bool:
        return await app.store.revoke_api_key(key_id)

    if not with_store(app_dir, go):
        typer.echo(f"error: no active key {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    """Add ``sluice apikey``."""
    app.add_typer(apikey_app, name="apikey")
