"""``sluice secret set|list|show|rotate|delete``: secrets kept encrypted in the app's store.

``set`` reads the value from standard input or ``--from-file``, never from the command line
(argv is visible to every user of the machine and kept in shell histories); ``list`` and
``show`` print metadata only. Each change is authorized and audited
(:mod:`sluice.governance.managed`).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.common import AppDir, JsonFlag, fail, print_json
from sluice.cli.governed import AsName, Why
from sluice.cli.managed_common import with_managed
from sluice.errors import ConfigError
from sluice.governance import LOCAL_ADMIN, Principal
from sluice.governance.managed import ManagedConfig
from sluice.governance.secrets import MAX_VALUE_BYTES, SecretInfo

secret_app = typer.Typer(help="Secrets, encrypted in the store.", no_args_is_help=True)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def read_value(from_file: Path | None) -> str:
    """The value to store: the file's content, or standard input (one trailing newline, as
    ``echo`` adds, is dropped)."""
    try:
        if from_file is not None:
            raw = from_file.read_bytes()[: MAX_VALUE_BYTES + 2]
        else:
            if sys.stdin.isatty():
                typer.echo("reading the value from standard input (end with Ctrl-D)", err=True)
            raw = sys.stdin.buffer.read(MAX_VALUE_BYTES + 2)
    except OSError as exc:
        raise fail(ConfigError(f"{from_file}: cannot read: {exc.strerror}")) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        where = from_file or "standard input"
        raise fail(ConfigError(f"{where}: the value must be UTF-8 text")) from None
    return text[:-1] if text.endswith("\n") else text


@secret_app.command("set")
def set_secret(
    name: str,
    on_argv: Annotated[
        str | None, typer.Argument(hidden=True, metavar="", show_default=False)
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="Read the value from this file.")
    ] = None,
    app_dir: AppDir = Path(),
    who: AsName = LOCAL_ADMIN,
    why: Why = "",
    as_json: JsonFlag = False,
) -> None:
    """Store a new version of NAME; the value comes from stdin or --from-file, never argv."""
    if on_argv is not None:
        # Refused without echoing it: argv is visible to every user and kept in histories.
        raise fail(ConfigError("the value is read from standard input or --from-file, never"
                               " from the command line (other users of the machine see it,"
                               " and shells keep it in their history)"))  # fmt: skip
    value = read_value(from_file)

    async def go(managed: ManagedConfig, principal: Principal) -> SecretInfo:
        return await managed.set_secret(principal, name, value, why)

    info = with_managed(app_dir, who, go)
    if as_json:
        print_json(info.as_dict())
        return
    typer.echo(f"set {name} version {info.latest.version} (key {info.latest.key_id})")


@secret_app.command("list")
def list_secrets(
    app_dir: AppDir = Path(), who: AsName = LOCAL_ADMIN, as_json: JsonFlag = False
) -> None:
    """List secrets: name, latest version, when and by whom it was set (never a value)."""

    async def go(managed: ManagedConfig, principal: Principal) -> list[SecretInfo]:
        return await managed.list_secrets(principal)

    found = with_managed(app_dir, who, go)
    if as_json:
        print_json([info.as_dict() for info in found])
        return
    for info in found:
        latest = info.latest
        typer.echo(f"{info.name}  v{latest.version}  {_when(latest.created_at)}"
                   f"  by {latest.created_by}  key {latest.key_id}")  # fmt: skip


@secret_app.command("show")
def show_secret(
    name: str, app_dir: AppDir = Path(), who: AsName = LOCAL_ADMIN, as_json: JsonFlag = False
) -> None:
    """Show NAME's versions: number, time, who set it, the key wrapping it (never the value)."""

    async def go(managed: ManagedConfig, principal: Principal) -> SecretInfo:
        return await managed.show_secret(principal, name)

    info = with_managed(app_dir, who, go)
    if as_json:
        print_json(info.as_dict())
        return
    typer.echo(info.name)
    for version in info.versions:
        typer.echo(f"  v{version.version}  {_when(version.created_at)}  by {version.created_by}"
                   f"  key {version.key_id}")  # fmt: skip


@secret_app.command("rotate")
def rotate_secrets(
    app_dir: AppDir = Path(), who: AsName = LOCAL_ADMIN, why: Why = "", as_json: JsonFlag = False
) -> None:
    """Re-wrap every secret's data key with the keyring's active key (values unchanged).

    Add the new key to the keyring and make it active first; every version stays readable.
    """

    async def go(managed: ManagedConfig, principal: Principal) -> int:
        return await managed.rotate_secrets(principal, why)

    changed = with_managed(app_dir, who, go)
    if as_json:
        print_json({"rewrapped": changed})
        return
    typer.echo(f"re-wrapped {changed} data keys")


@secret_app.command("delete")
def delete_secret(
    name: str,
    app_dir: AppDir = Path(),
    who: AsName = LOCAL_ADMIN,
    why: Why = "",
    as_json: JsonFlag = False,
) -> None:
    """Delete every version of NAME."""

    async def go(managed: ManagedConfig, principal: Principal) -> int:
        return await managed.delete_secret(principal, name, why)

    removed = with_managed(app_dir, who, go)
    if as_json:
        print_json({"name": name, "deleted_versions": removed})
        return
    typer.echo(f"deleted {name} ({removed} versions)")


def register(app: typer.Typer) -> None:
    """Add ``sluice secret``."""
    app.add_typer(secret_app, name="secret")
