"""``sluice encryption new-key/rotate``: keys for encryption at rest."""

from __future__ import annotations

from pathlib import Path

import typer

from sluice.app import SluiceApp, encryption_codec
from sluice.cli.common import AppDir, with_store
from sluice.cli.managed_common import with_managed
from sluice.config import load_settings
from sluice.governance import LOCAL_ADMIN, Principal
from sluice.governance.managed import ManagedConfig
from sluice.guard.crypto import new_key

encryption_app = typer.Typer(help="Encryption at rest.", no_args_is_help=True)


@encryption_app.command("new-key")
def new_key_command() -> None:
    """Print a new random 256-bit key (base64) for SLUICE_ENCRYPTION_KEYS."""
    typer.echo(new_key())


@encryption_app.command("rotate")
def rotate(app_dir: AppDir = Path()) -> None:
    """Re-encrypt every stored payload sealed with a key other than the active one.

    Step errors and quarantine reasons stored plain (before schema version 4) are sealed too,
    and the secrets' data keys are re-wrapped (as ``sluice secret rotate``, audited).
    Add the new key to the keyring, make it active, run this, then remove the old key.
    """

    async def go(app: SluiceApp) -> int:
        return await app.store.reencode_payloads()

    typer.echo(f"re-encrypted {with_store(app_dir, go)} payloads")
    if encryption_codec(load_settings(app_dir)) is None:
        return  # no keyring: no secret can exist

    async def rewrap(managed: ManagedConfig, who: Principal) -> int:
        return await managed.rotate_secrets(who, "sluice encryption rotate")

    typer.echo(f"re-wrapped {with_managed(app_dir, LOCAL_ADMIN, rewrap)} secret data keys")


def register(app: typer.Typer) -> None:
    """Add ``sluice encryption``."""
    app.add_typer(encryption_app, name="encryption")
