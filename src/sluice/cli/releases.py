"""``sluice release create|list|show|diff``: immutable, content-addressed workflow releases.

``create`` builds the manifest of one workflow from the app's files (nothing starts, nothing
trains: a missing model artifact is an error naming it) and stores it; creating it again
changes nothing and prints the stored release. ``diff A B`` lists what changed, section by
section: the workflow file, step code, files, prompt templates, models, thresholds, routing.
"""

from __future__ import annotations

import getpass
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from sluice.app import SluiceApp
from sluice.cli.common import AppDir, JsonFlag, fail, print_json, with_store
from sluice.errors import SluiceError
from sluice.releases import Change, Release, build_release, diff_manifests

release_app = typer.Typer(
    help="Immutable releases of a workflow: create, list, show, diff.", no_args_is_help=True
)

#: Most releases ``release list`` prints.
MAX_LIST = 1000


def register(app: typer.Typer) -> None:
    """Add the ``release`` command group."""
    app.add_typer(release_app, name="release")


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        return ""


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _compact(value: Any) -> str:
    return "-" if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@release_app.command("create")
def create(
    app_dir: Annotated[Path, typer.Argument(help="App directory holding sluice.yaml.")],
    workflow: Annotated[str, typer.Option("--workflow", "-w", help="The workflow to release.")],
    note: Annotated[str, typer.Option(help="Why this release exists.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Build a release of WORKFLOW from APP_DIR's files and store it (idempotent)."""
    try:
        release = build_release(app_dir, workflow, created_at=time.time(), created_by=_who(),
                                note=note)  # fmt: skip
    except SluiceError as exc:
        raise fail(exc) from None

    async def go(app: SluiceApp) -> tuple[bool, Release]:
        created = await app.store.put_release(release.to_record())
        return created, Release.from_record(await app.store.get_release(release.id))

    created, stored = with_store(app_dir, go)
    if as_json:
        print_json({**stored.summary(), "created": created})
        return
    state = "created" if created else f"exists since {_when(stored.created_at)}"
    typer.echo(f"{stored.id}  {stored.workflow} v{stored.version}  {state}")


@release_app.command("list")
def list_releases(
    workflow: Annotated[str | None, typer.Option("--workflow", "-w", help="Only this one.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIST, help="Most to show.")] = 50,
    app_dir: AppDir = Path(),
    as_json: JsonFlag = False,
) -> None:
    """Releases, newest first."""

    async def go(app: SluiceApp) -> list[Release]:
        records = await app.store.list_releases(workflow=workflow, limit=limit)
        return [Release.from_record(r) for r in records]

    releases = with_store(app_dir, go)
    if as_json:
        print_json([r.summary() for r in releases])
        return
    if not releases:
        typer.echo("no releases", err=True)
        return
    width = max(len("workflow"), *(len(r.workflow) for r in releases))
    typer.echo(f"{'id':<18}  {'workflow':<{width}}  {'version':>7}  {'created':<25}  by  note")
    for r in releases:
        typer.echo(f"{r.id:<18}  {r.workflow:<{width}}  {r.version:>7}  {_when(r.created_at):<25}"
                   f"  {r.created_by or '-'}  {r.note}")  # fmt: skip


def _get(app_dir: Path, *ids: str) -> list[Release]:
    async def go(app: SluiceApp) -> list[Release]:
        return [Release.from_record(await app.store.get_release(i)) for i in ids]

    return with_store(app_dir, go)


@release_app.command("show")
def show(
    release_id: Annotated[str, typer.Argument(help="The release id (r_...).")],
    app_dir: AppDir = Path(),
    as_json: JsonFlag = False,
) -> None:
    """One release: who made it and what it pins."""
    (release,) = _get(app_dir, release_id)
    if as_json:
        print_json(release.as_dict())
        return
    m = release.manifest
    typer.echo(f"release   {release.id}")
    typer.echo(f"workflow  {release.workflow} v{release.version}  ({m['workflow']['file']}, "
               f"{m['workflow']['digest']})")  # fmt: skip
    typer.echo(f"created   {_when(release.created_at)} by {release.created_by or '-'}")
    if release.note:
        typer.echo(f"note      {release.note}")
    typer.echo(f"sluice    {m.get('sluice', '-')}")
    sections = ("steps", "files", "prompts", "models", "thresholds", "routing")
    for section in sections:
        entries = m.get(section) or {}
        typer.echo(f"{section}:" + ("" if entries else " none"))
        order = m["workflow"].get("steps", []) if section == "steps" else sorted(entries)
        for key in order:
            typer.echo(f"  {key}: {_compact(entries.get(key))}")


def _change_line(change: Change) -> str:
    return f"{change.kind:<8} {change.section}.{change.key}: {_compact(change.before)} -> " + (
        _compact(change.after)
    )


@release_app.command("diff")
def diff(
    first: Annotated[str, typer.Argument(help="The older release id.")],
    second: Annotated[str, typer.Argument(help="The newer release id.")],
    app_dir: AppDir = Path(),
    as_json: JsonFlag = False,
) -> None:
    """What changed from release A to release B, entry by entry."""
    before, after = _get(app_dir, first, second)
    changes = diff_manifests(before.manifest, after.manifest)
    if as_json:
        print_json({"from": before.id, "to": after.id, "changes": [c.as_dict() for c in changes]})
        return
    typer.echo(f"{before.id} -> {after.id}: {len(changes)} change(s)")
    for change in changes:
        typer.echo(_change_line(change))
