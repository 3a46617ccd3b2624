"""``sluice principal create/list/show/disable/token/revoke-token`` and ``sluice role``.

Principals are users and service accounts with built-in roles (deny by default); tokens are
shown once and stored as hashes. Every change is audited (``sluice audit list``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from sluice.app import SluiceApp
from sluice.cli.apikeys import expiry
from sluice.cli.common import AppDir, JsonAlways, JsonFlag, print_json
from sluice.cli.governed import AsName, Why, governed
from sluice.governance import LOCAL_ADMIN, ROLES, Authorized, role_named
from sluice.governance.principals import KINDS
from sluice.ingress import admin_actions as actions

principal_app = typer.Typer(help="Users and service accounts, and their tokens.",
                            no_args_is_help=True)  # fmt: skip
role_app = typer.Typer(help="The built-in roles, granted to principals.", no_args_is_help=True)


@principal_app.command("create")
def create(
    name: str,
    kind: Annotated[str, typer.Option(help=f"One of: {', '.join(KINDS)}.")] = "user",
    role: Annotated[
        list[str] | None, typer.Option(help=f"Role (repeatable): {', '.join(ROLES)}.")
    ] = None,
    app_dir: AppDir = Path(),
    as_name: AsName = LOCAL_ADMIN,
    why: Why = "",
) -> None:
    """Create a principal (no roles: it may do nothing until granted one)."""

    async def go(app: SluiceApp, door: Authorized) -> None:
        principal = await door.change(
            "principal.create", f"principal/{name}",
            lambda: actions.new_principal(app, name, kind, role or []),
        )  # fmt: skip
        typer.echo(f"created {principal.kind} {principal.name} ({principal.id}) with roles "
                   f"{', '.join(principal.roles) or '(none)'}")  # fmt: skip

    governed(app_dir, "principal create", as_name, why, go)


@principal_app.command("list")
def list_principals(
    app_dir: AppDir = Path(), as_json: JsonFlag = False, as_name: AsName = LOCAL_ADMIN
) -> None:
    """List principals: name, kind, roles, disabled."""

    async def go(app: SluiceApp, door: Authorized) -> None:
        found = [actions.principal_view(p) for p in await app.store.list_principals()]
        if as_json:
            print_json(found)
            return
        for p in found:
            off = "  disabled" if p["disabled"] else ""
            typer.echo(f"{p['name']}  {p['kind']}  {','.join(p['roles']) or '-'}{off}")

    governed(app_dir, "principal list", as_name, "", go)


@principal_app.command("show")
def show(
    name: str, app_dir: AppDir = Path(), as_json: JsonAlways = False, as_name: AsName = LOCAL_ADMIN
) -> None:
    """Show one principal as JSON, with the permissions its roles give."""

    async def go(app: SluiceApp, door: Authorized) -> None:
        record = await app.store.get_principal(name)
        view = actions.principal_view(record)
        perms = set().union(*(role_named(r).permissions for r in record.roles if r in ROLES))
        print_json({**view, "permissions": sorted(p.value for p in perms)})

    governed(app_dir, "principal show", as_name, "", go)


@principal_app.command("disable")
def disable(
    name: str, app_dir: AppDir = Path(), as_name: AsName = LOCAL_ADMIN, why: Why = ""
) -> None:
    """Disable a principal: its tokens stop working at once."""

    async def go(app: SluiceApp, door: Authorized) -> bool:
        return await door.change(
            "principal.disable", f"principal/{name}", lambda: actions.disable_principal(app, name)
        )

    if not governed(app_dir, "principal disable", as_name, why, go):
        typer.echo(f"error: {name} is disabled already", err=True)
        raise typer.Exit(1)
    typer.echo(f"disabled {name}")


@principal_app.command("token")
def token(
    name: str,
    expires_in: Annotated[
        str | None, typer.Option(help="Expire after this long: 90m, 12h, 30d, 2w.")
    ] = None,
    app_dir: AppDir = Path(),
    as_name: AsName = LOCAL_ADMIN,
    why: Why = "",
) -> None:
    """Issue a bearer token for a principal and print it once; only its hash is stored."""
    expires = expiry(expires_in, None, time.time())

    async def go(app: SluiceApp, door: Authorized) -> str:
        record, secret = await door.change(
            "principal.token", f"principal/{name}", lambda: actions.new_token(app, name, expires)
        )
        typer.echo(f"token {record.id} for {name}; store it now, it is not shown again:",
                   err=True)  # fmt: skip
        return secret

    typer.echo(governed(app_dir, "principal token", as_name, why, go))


@principal_app.command("revoke-token")
def revoke_token(
    name: str, token_id: str, app_dir: AppDir = Path(), as_name: AsName = LOCAL_ADMIN,
    why: Why = "",
) -> None:  # fmt: skip
    """Revoke one of a principal's tokens (its id is printed when the token is issued)."""

    async def go(app: SluiceApp, door: Authorized) -> bool:
        return await door.change(
            "principal.revoke-token", f"principal/{name}",
            lambda: actions.revoke_token(app, name, token_id),
        )  # fmt: skip

    if not governed(app_dir, "principal revoke-token", as_name, why, go):
        typer.echo(f"error: token {token_id} is revoked already", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked token {token_id} of {name}")


def _role_view(name: str) -> dict[str, Any]:
    role = role_named(name)
    return {"name": role.name, "description": role.description,
            "permissions": sorted(p.value for p in role.permissions)}  # fmt: skip


@role_app.command("list")
def list_roles(
    app_dir: AppDir = Path(), as_json: JsonFlag = False, as_name: AsName = LOCAL_ADMIN
) -> None:
    """List the built-in roles and what they allow."""

    async def go(app: SluiceApp, door: Authorized) -> None:
        views = [_role_view(name) for name in ROLES]
        if as_json:
            print_json(views)
            return
        for view in views:
            typer.echo(f"{view['name']}  {view['description']}")

    governed(app_dir, "role list", as_name, "", go)


@role_app.command("show")
def show_role(
    name: str, app_dir: AppDir = Path(), as_json: JsonAlways = False, as_name: AsName = LOCAL_ADMIN
) -> None:
    """Show one role as JSON: its permissions."""

    async def go(app: SluiceApp, door: Authorized) -> None:
        print_json(_role_view(name))

    governed(app_dir, "role show", as_name, "", go)


@role_app.command("grant")
def grant(
    principal: str,
    role: str,
    app_dir: AppDir = Path(),
    as_name: AsName = LOCAL_ADMIN,
    why: Why = "",
) -> None:
    """Give a principal a built-in role."""

    async def go(app: SluiceApp, door: Authorized) -> bool:
        return await door.change(
            "role.grant", f"principal/{principal}",
            lambda: actions.grant_role(app, principal, role),
        )  # fmt: skip

    done = governed(app_dir, "role grant", as_name, why, go)
    typer.echo(f"granted {role} to {principal}" if done else f"{principal} has {role} already")


@role_app.command("revoke")
def revoke(
    principal: str,
    role: str,
    app_dir: AppDir = Path(),
    as_name: AsName = LOCAL_ADMIN,
    why: Why = "",
) -> None:
    """Take a role from a principal."""

    async def go(app: SluiceApp, door: Authorized) -> bool:
        return await door.change(
            "role.revoke", f"principal/{principal}",
            lambda: actions.revoke_role(app, principal, role),
        )  # fmt: skip

    if not governed(app_dir, "role revoke", as_name, why, go):
        typer.echo(f"error: {principal} does not have {role}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {role} from {principal}")


def register(app: typer.Typer) -> None:
    """Add ``sluice principal`` and ``sluice role``."""
    app.add_typer(principal_app, name="principal")
    app.add_typer(role_app, name="role")
