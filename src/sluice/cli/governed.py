"""Governed commands: who the command line acts as, and the one table of what each needs.

On a local store the command line acts as an admin identity, ``local-admin`` unless
``--as NAME`` (or ``SLUICE_AS``) names it otherwise; when NAME is a stored principal, that
principal's roles apply instead (and a disabled one may do nothing). This is attribution, not
authentication: whoever can open the store can write it directly; the name goes into the audit
trail, and ``--as`` lets a person act with no more than their role's permissions. Each
governed command looks its permission up in :data:`COMMANDS` and comes in
through :func:`governed` (a refusal exits with code 3 and changes nothing); its changes go
through the :class:`~sluice.governance.Authorized` pass it is handed, into the audit trail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from sluice.app import SluiceApp
from sluice.cli.common import fail
from sluice.config import load_settings
from sluice.errors import ConfigError, Forbidden, NotFoundError, SluiceError
from sluice.governance import Authorized, Permission, Principal, gate_for, local_admin
from sluice.store.base import GovernanceStore

T = TypeVar("T")
P = Permission
FORBIDDEN_EXIT = 3

AsName = Annotated[
    str,
    typer.Option("--as", envvar="SLUICE_AS",
                 help="Act as this principal (recorded in the audit trail)."),
]  # fmt: skip
Why = Annotated[str, typer.Option("--why", help="Why: recorded in the audit trail.")]

#: Every governed command and the permission it needs: the one table of CLI authorization.
COMMANDS: dict[str, Permission] = {
    "apikey create": P.API_KEYS_WRITE,
    "apikey list": P.API_KEYS_READ,
    "apikey revoke": P.API_KEYS_WRITE,
    "quarantine replay": P.QUARANTINE_REPLAY,
    "quarantine drop": P.QUARANTINE_DROP,
    "runs replay": P.RUNS_REPLAY,
    "principal create": P.PRINCIPALS_WRITE,
    "principal list": P.PRINCIPALS_READ,
    "principal show": P.PRINCIPALS_READ,
    "principal disable": P.PRINCIPALS_WRITE,
    "principal token": P.PRINCIPALS_WRITE,
    "principal revoke-token": P.PRINCIPALS_WRITE,
    "role list": P.ROLES_READ,
    "role show": P.ROLES_READ,
    "role grant": P.ROLES_WRITE,
    "role revoke": P.ROLES_WRITE,
    "audit list": P.AUDIT_READ,
    "audit show": P.AUDIT_READ,
    "audit export": P.AUDIT_READ,
    "audit verify": P.AUDIT_READ,
    "audit checkpoint": P.AUDIT_READ,
}


async def acting_principal(store: GovernanceStore, name: str) -> Principal:
    """Who ``--as NAME`` is: the stored principal of that name, else the local admin by it."""
    if not name.strip() or name.startswith("apikey:"):
        raise ConfigError(f"--as: {name!r} is not a name a person or service can have")
    try:
        return Principal.from_record(await store.get_principal(name))
    except NotFoundError:
        return local_admin(name)


def governed(
    app_dir: Path,
    command: str,
    as_name: str,
    why: str,
    fn: Callable[[SluiceApp, Authorized], Awaitable[T]],
) -> T:
    """Open the app's store, let ``as_name`` in for ``command``'s permission, run ``fn``.

    A refusal prints one line and exits with code 3; other errors exit with code 2.
    """
    permission = COMMANDS[command]

    async def go() -> T:
        app = SluiceApp.from_settings(load_settings(app_dir), run_pools=())
        await app.store.open()
        try:
            principal = await acting_principal(app.store, as_name)
            door = gate_for(app.store).enter(principal, permission, "cli", why)
            return await fn(app, door)
        finally:
            await app.store.aclose()

    try:
        return asyncio.run(go())
    except Forbidden as exc:
        raise fail(exc, FORBIDDEN_EXIT) from None
    except SluiceError as exc:
        raise fail(exc) from None
