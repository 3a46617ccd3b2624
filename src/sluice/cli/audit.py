"""``sluice audit list/show/export/verify/checkpoint/new-key``: the tamper-evident audit trail.

Checkpoints are signed with the key in ``SLUICE_AUDIT_SIGNING_KEY`` (or the file named by
``SLUICE_AUDIT_SIGNING_KEY_FILE``); ``verify`` checks them with that key's public half or
``SLUICE_AUDIT_VERIFY_KEY``. ``new-key`` prints a fresh signing key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from sluice.app import SluiceApp
from sluice.cli.common import AppDir, JsonAlways, JsonFlag, print_json
from sluice.cli.governed import AsName, governed
from sluice.governance import LOCAL_ADMIN, Authorized, new_signing_key
from sluice.ingress.admin import audit_view

audit_app = typer.Typer(help="Read, export and verify the audit trail.", no_args_is_help=True)


@audit_app.command("list")
def list_entries(
    after: Annotated[int, typer.Option(help="Entries after this sequence number.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many (up to 1000).")] = 100,
    app_dir: AppDir = Path(),
    as_json: JsonFlag = False,
    as_name: AsName = LOCAL_ADMIN,
) -> None:
    """List entries, oldest first: sequence number, time, actor, action, resource, why."""

    async def go(app: SluiceApp, door: Authorized) -> None:
        entries = await door.gate.audit.list(after, limit)
        if as_json:
            print_json([audit_view(e) for e in entries])
            return
        for e in entries:
            why = f"  ({e.why})" if e.why else ""
            typer.echo(f"{e.seq}  {e.ts:.3f}  {e.actor}  {e.action}  {e.resource}  "
                       f"{e.source}{why}")  # fmt: skip

    governed(app_dir, "audit list", as_name, "", go)


@audit_app.command("show")
def show(
    seq: int, app_dir: AppDir = Path(), as_json: JsonAlways = False, as_name: AsName = LOCAL_ADMIN
) -> None:
    """Show one entry as JSON (states as digests, and its chain hashes)."""

    async def go(app: SluiceApp, door: Authorized) -> None:
        print_json(audit_view(await door.gate.audit.show(seq)))

    governed(app_dir, "audit show", as_name, "", go)


@audit_app.command("export")
def export(
    output: Annotated[
        Path | None, typer.Option(help="Write here instead of standard output.")
    ] = None,
    app_dir: AppDir = Path(),
    as_name: AsName = LOCAL_ADMIN,
) -> None:
    """Every entry, then every signed checkpoint and the public key, one JSON object a line."""

    async def go(app: SluiceApp, door: Authorized) -> int:
        count = 0
        sink = None if output is None else output.open("wb")
        try:
            async for item in door.gate.audit.export():
                line = orjson.dumps(item)
                if sink is None:
                    typer.echo(line.decode())
                else:
                    sink.write(line + b"\n")
                count += 1
        finally:
            if sink is not None:
                sink.close()
        return count

    count = governed(app_dir, "audit export", as_name, "", go)
    if output is not None:
        typer.echo(f"wrote {count} lines to {output}", err=True)


@audit_app.command("verify")
def verify(
    app_dir: AppDir = Path(), as_json: JsonFlag = False, as_name: AsName = LOCAL_ADMIN
) -> None:
    """Check the chain and the signed checkpoints; exit 1 naming the first bad entry."""

    async def go(app: SluiceApp, door: Authorized) -> dict[str, object]:
        return (await door.gate.audit.verify()).as_dict()

    report = governed(app_dir, "audit verify", as_name, "", go)
    if as_json:
        print_json(report)
    elif report["ok"]:
        signed = "" if report["signatures_checked"] else " (no key: signatures not checked)"
        typer.echo(f"ok: {report['entries']} entries, {report['checkpoints']} checkpoints"
                   f"{signed}")  # fmt: skip
    else:
        typer.echo(f"error: entry {report['first_bad']}: {report['problem']}", err=True)
    if not report["ok"]:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def checkpoint(app_dir: AppDir = Path(), as_name: AsName = LOCAL_ADMIN) -> None:
    """Sign the current head now (needs the signing key)."""

    async def go(app: SluiceApp, door: Authorized) -> int | None:
        record = await door.gate.audit.checkpoint()
        return None if record is None else record.seq

    seq = governed(app_dir, "audit checkpoint", as_name, "", go)
    if seq is None:
        typer.echo("error: no signing key (SLUICE_AUDIT_SIGNING_KEY) or no entries", err=True)
        raise typer.Exit(1)
    typer.echo(f"signed the head at entry {seq}")


@audit_app.command("new-key")
def new_key() -> None:
    """Print a fresh Ed25519 signing key for SLUICE_AUDIT_SIGNING_KEY (keep it off the store's
    machine if you can; verifiers need only its public half)."""
    typer.echo(new_signing_key())


def register(app: typer.Typer) -> None:
    """Add ``sluice audit``."""
    app.add_typer(audit_app, name="audit")
