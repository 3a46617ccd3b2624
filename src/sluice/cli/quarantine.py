"""``sluice quarantine list/show/replay/drop``: malformed events kept aside at ingress.

Replay normalizes the raw payload again under the current mapping and schema, so fixing a
source mapping or a workflow schema and replaying recovers the events.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import orjson
import typer

from sluice.app import SluiceApp
from sluice.cli.common import AppDir, JsonAlways, JsonFlag, print_json, with_store
from sluice.cli.governed import AsName, Why, governed
from sluice.governance import LOCAL_ADMIN, Authorized
from sluice.ingress import admin_actions as actions
from sluice.ingress.intake import Ingress
from sluice.ingress.settings import parse_ingress

quarantine_app = typer.Typer(help="Inspect, replay and drop quarantined events.",
                             no_args_is_help=True)  # fmt: skip


@quarantine_app.command("list")
def list_items(
    app_dir: AppDir = Path(),
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List quarantined events with their reasons."""

    async def go(app: SluiceApp) -> None:
        items = await app.store.list_quarantine(limit)
        if as_json:
            print_json([{"id": item.id, "source": item.source, "workflow": item.workflow,
                         "tenant": item.tenant, "reason": item.reason}
                        for item in items])  # fmt: skip
            return
        for item in items:
            typer.echo(f"{item.id}  {item.source} -> {item.workflow}  {item.reason}")

    with_store(app_dir, go)


@quarantine_app.command("show")
def show(item_id: str, app_dir: AppDir = Path(), as_json: JsonAlways = False) -> None:
    """Show one quarantined event as JSON: every problem and the raw payload."""

    async def go(app: SluiceApp) -> None:
        item = await app.store.get_quarantined(item_id)
        try:
            payload: object = orjson.loads(item.payload)
        except orjson.JSONDecodeError:
            payload = item.payload.decode("utf-8", "replace")
        print_json({"id": item.id, "source": item.source, "workflow": item.workflow,
                    "tenant": item.tenant, "reason": item.reason,
                    "problems": list(item.problems),
                    "payload": payload})  # fmt: skip

    with_store(app_dir, go)


@quarantine_app.command("replay")
def replay(
    item_ids: Annotated[list[str] | None, typer.Argument(help="Entries to replay.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every entry.")] = False,
    app_dir: AppDir = Path(),
    as_name: AsName = LOCAL_ADMIN,
    why: Why = "",
) -> None:
    """Normalize again; entries that now pass are accepted (their ids and idempotency keys
    then lead to the event), the rest stay with today's problems as their reasons."""

    async def go(app: SluiceApp, door: Authorized) -> int:
        gateway = Ingress(app, parse_ingress(app.settings))
        ids = list(item_ids or [])
        if all_:
            ids += [item.id for item in await app.store.list_quarantine(1_000_000)]
        still = 0
        for item_id in ids:
            receipt, problems = await door.change(
                "quarantine.replay", f"quarantine/{item_id}",
                partial(actions.replay_quarantined, gateway, item_id),
            )  # fmt: skip
            if receipt is not None:
                typer.echo(f"{item_id}: accepted as event {receipt.event_id}")
            else:
                still += 1
                typer.echo(f"{item_id}: still malformed: {'; '.join(problems)}", err=True)
        return still

    if not item_ids and not all_:
        typer.echo("error: name entries to replay, or pass --all", err=True)
        raise typer.Exit(2)
    raise typer.Exit(1 if governed(app_dir, "quarantine replay", as_name, why, go) else 0)


@quarantine_app.command("drop")
def drop(
    item_ids: list[str], app_dir: AppDir = Path(), as_name: AsName = LOCAL_ADMIN, why: Why = ""
) -> None:
    """Delete quarantined events for good."""

    async def go(app: SluiceApp, door: Authorized) -> int:
        missing = 0
        for item_id in item_ids:
            if await door.change(
                "quarantine.drop", f"quarantine/{item_id}",
                partial(actions.drop_quarantined, app, item_id),
            ):  # fmt: skip
                typer.echo(f"{item_id}: dropped")
            else:
                missing += 1
                typer.echo(f"{item_id}: not in quarantine", err=True)
        return missing

    raise typer.Exit(1 if governed(app_dir, "quarantine drop", as_name, why, go) else 0)


def register(app: typer.Typer) -> None:
    """Add ``sluice quarantine``."""
    app.add_typer(quarantine_app, name="quarantine")
