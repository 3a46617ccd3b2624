"""``sluice apikey create/list/revoke``: API keys, each mapped to a tenant."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from sluice.app import SluiceApp
from sluice.cli.common import AppDir, JsonFlag, print_json
from sluice.cli.governed import AsName, Why, governed
from sluice.governance import LOCAL_ADMIN, Authorized
from sluice.ingress import admin_actions as actions
from sluice.ingress.apikeys import ROLES, expiry_text

apikey_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^(\d+)([smhdw])$")


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def expiry(expires_in: str | None, expires_at: str | None, now: float) -> float | None:
    """The expiry time asked for: ``--expires-in 30d`` (s, m, h, d, w) or ``--expires-at``
    ISO 8601 (UTC unless it names an offset); None when neither is given."""
    if expires_in is not None and expires_at is not None:
        raise typer.BadParameter("give --expires-in or --expires-at, not both")
    if expires_in is not None:
        match = _DURATION.match(expires_in.strip())
        if match is None or int(match[1]) == 0:
            raise typer.BadParameter(
                f"{expires_in!r}: write a positive count and a unit, e.g. 90m, 12h, 30d",
                param_hint="--expires-in",
            )
        return now + int(match[1]) * _UNITS[match[2]]
    if expires_at is not None:
        try:
            when = datetime.fromisoformat(expires_at.strip())
        except ValueError:
            raise typer.BadParameter(
                f"{expires_at!r} is not an ISO 8601 time, e.g. 2027-01-31T18:00:00Z",
                param_hint="--expires-at",
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    return None


@apikey_app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for.")],
    role: Annotated[
        list[str] | None,
        typer.Option(help=f"Role (repeatable): {', '.join(ROLES)}; operator sees every tenant."),
    ] = None,
    expires_in: Annotated[
        str | None, typer.Option(help="Expire after this long: 90m, 12h, 30d, 2w.")
    ] = None,
    expires_at: Annotated[
        str | None, typer.Option(help="Expire at this ISO 8601 time (UTC unless given).")
    ] = None,
    app_dir: AppDir = Path(),
    as_name: AsName = LOCAL_ADMIN,
    why: Why = "",
) -> None:
    """Create a key and print it once; only its hash is stored."""
    expires = expiry(expires_in, expires_at, time.time())

    async def go(app: SluiceApp, door: Authorized) -> str:
        record, key = await door.change(
            "apikey.create", f"apikey/{tenant}",
            lambda: actions.create_key(app, tenant, role or ["runner"], expires),
        )  # fmt: skip
        note = "store it now, it is not shown again"
        until = "" if expires is None else f", expires {expiry_text(expires)}"
        typer.echo(f"created key {record.id} for tenant {tenant}{until}; {note}:", err=True)
        return key

    typer.echo(governed(app_dir, "apikey create", as_name, why, go))


@apikey_app.command("list")
def list_keys(
    app_dir: AppDir = Path(), as_json: JsonFlag = False, as_name: AsName = LOCAL_ADMIN
) -> None:
    """List keys: id, tenant, roles, created, expires, revoked (times as epoch seconds in
    JSON, never the key itself)."""

    async def go(app: SluiceApp, door: Authorized) -> None:
        now = time.time()
        keys = await app.store.list_api_keys()
        if as_json:
            print_json([{"id": k.id, "tenant": k.tenant, "roles": list(k.roles),
                         "created_at": k.created_at, "expires_at": k.expires_at,
                         "expired": k.expires_at is not None and k.expires_at <= now,
                         "revoked_at": k.revoked_at}
                        for k in keys])  # fmt: skip
            return
        for k in keys:
            expired = " (expired)" if k.expires_at is not None and k.expires_at <= now else ""
            typer.echo(f"{k.id}  {k.tenant}  {','.join(k.roles)}  created {_when(k.created_at)}"
                       f"  expires {_when(k.expires_at)}{expired}"
                       f"  revoked {_when(k.revoked_at)}")  # fmt: skip

    governed(app_dir, "apikey list", as_name, "", go)


@apikey_app.command("revoke")
def revoke(
    key_id: str, app_dir: AppDir = Path(), as_name: AsName = LOCAL_ADMIN, why: Why = ""
) -> None:
    """Revoke a key; running servers refuse it within a second (they poll the store)."""

    async def go(app: SluiceApp, door: Authorized) -> bool:
        return await door.change(
            "apikey.revoke", f"apikey/{key_id}", lambda: actions.revoke_key(app, key_id)
        )

    if not governed(app_dir, "apikey revoke", as_name, why, go):
        typer.echo(f"error: no active key {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    """Add ``sluice apikey``."""
    app.add_typer(apikey_app, name="apikey")
