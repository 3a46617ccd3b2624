"""``sluice template push|list|show|diff``: prompt template versions managed in the store.

Templates are authored as files (``APP_DIR/prompts/*.yaml``); ``push`` uploads the versions the
store lacks (pushing again adds nothing), each push of a new version audited. The runtime
reads a ``name@version`` from the store when the app's files no longer hold it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.common import AppDir, JsonFlag, print_json
from sluice.cli.governed import AsName, Why
from sluice.cli.managed_common import with_managed
from sluice.governance import LOCAL_ADMIN, Principal
from sluice.governance.managed import ManagedConfig
from sluice.governance.templates import Pushed, record_dict
from sluice.store.managed import TemplateRecord

template_app = typer.Typer(help="Prompt template versions in the store.", no_args_is_help=True)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@template_app.command("push")
def push(
    app: Annotated[Path, typer.Argument(help="App directory (its prompts/ folder is pushed).")],
    who: AsName = LOCAL_ADMIN,
    why: Why = "",
    as_json: JsonFlag = False,
) -> None:
    """Upload APP's template files: new versions only (idempotent)."""

    async def go(managed: ManagedConfig, principal: Principal) -> list[Pushed]:
        return await managed.push_templates(principal, app.resolve(), why)

    pushed = with_managed(app, who, go)
    if as_json:
        print_json([item.as_dict() for item in pushed])
        return
    for item in pushed:
        typer.echo(f"{'added' if item.added else 'kept '}  {item.id}  {item.file}")
    added = sum(item.added for item in pushed)
    typer.echo(f"{added} new, {len(pushed) - added} already in the store", err=True)


@template_app.command("list")
def list_templates(
    name: Annotated[str | None, typer.Argument(help="Only this template's versions.")] = None,
    app_dir: AppDir = Path(),
    who: AsName = LOCAL_ADMIN,
    as_json: JsonFlag = False,
) -> None:
    """List stored versions: id, when and by whom each was pushed."""

    async def go(managed: ManagedConfig, principal: Principal) -> list[TemplateRecord]:
        return await managed.list_templates(principal, name)

    records = with_managed(app_dir, who, go)
    if as_json:
        print_json([record_dict(r) for r in records])
        return
    for r in records:
        typer.echo(f"{r.id}  {_when(r.created_at)}  by {r.created_by}")


@template_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION")],
    app_dir: AppDir = Path(),
    who: AsName = LOCAL_ADMIN,
    as_json: JsonFlag = False,
) -> None:
    """Print a stored version's YAML (with --json: its metadata and source)."""

    async def go(managed: ManagedConfig, principal: Principal) -> TemplateRecord:
        return await managed.show_template(principal, ref)

    record = with_managed(app_dir, who, go)
    if as_json:
        print_json(record_dict(record, with_source=True))
        return
    typer.echo(f"# {record.id}, pushed {_when(record.created_at)} by {record.created_by}")
    typer.echo(record.source, nl=not record.source.endswith("\n"))


@template_app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="NAME@VERSION")],
    b: Annotated[str, typer.Argument(help="NAME@VERSION")],
    app_dir: AppDir = Path(),
    who: AsName = LOCAL_ADMIN,
    as_json: JsonFlag = False,
) -> None:
    """A unified diff of two stored versions (exit 1 when they differ, like diff)."""

    async def go(managed: ManagedConfig, principal: Principal) -> str:
        return await managed.diff_templates(principal, a, b)

    text = with_managed(app_dir, who, go)
    if as_json:
        print_json({"a": a, "b": b, "same": not text, "diff": text})
    elif text:
        typer.echo(text, nl=False)
    if text:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``sluice template``."""
    app.add_typer(template_app, name="template")
