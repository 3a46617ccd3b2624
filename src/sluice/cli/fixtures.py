"""``sluice fixtures export --app DIR --since 24h [--mask] --out F``: real events as fixtures.

The export streams the app's finished events and quarantine entries as JSON Lines
(``sluice.envs.fixture_file``), decrypted from the store and, with ``--mask``, with every PII
value replaced by a deterministic pseudonym of its kind; secrets are removed either way.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.common import AppDir, fail
from sluice.cli.costs import parse_since
from sluice.cli.progress import Progress, QuietFlag
from sluice.config import load_settings
from sluice.envs.fixtures import DEFAULT_LIMIT, KEY_ENV, export_fixtures
from sluice.errors import SluiceError

fixtures_app = typer.Typer(help="Fixture files made from real events.", no_args_is_help=True)


@fixtures_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="The JSON Lines file to write.")],
    app_dir: AppDir = Path(),
    since: Annotated[str, typer.Option(help="30m, 24h, 7d or an ISO time.")] = "24h",
    mask: Annotated[
        bool, typer.Option("--mask", help="Replace PII with deterministic pseudonyms.")
    ] = False,
    limit: Annotated[
        int, typer.Option(help="At most this many events, and this many quarantine entries.")
    ] = DEFAULT_LIMIT,
    quiet: QuietFlag = False,
) -> None:
    """Export finished events (inputs, step results, results) and quarantine entries."""
    try:
        settings = load_settings(app_dir)
        start = parse_since(since, time.time())
        with Progress("exporting", 0, unit="rows", quiet=quiet) as progress:
            result = asyncio.run(
                export_fixtures(settings, out, start, mask=mask, limit=limit, progress=progress)
            )
    except SluiceError as exc:
        raise fail(exc) from None
    if not mask:
        typer.echo("warning: not masked: the file holds the events' PII as stored", err=True)
    elif not result.stable_key:
        typer.echo(
            f"note: {KEY_ENV} is not set: pseudonyms are stable within this file only", err=True
        )
    if result.truncated:
        typer.echo(f"warning: stopped at --limit {limit}; older rows are in, newer ones not",
                   err=True)  # fmt: skip
    typer.echo(
        f"wrote {result.path}: {result.events} events, {result.quarantine} quarantine entries;"
        f" {result.replaced} PII values pseudonymized, {result.removed} secrets removed"
    )


def register(app: typer.Typer) -> None:
    """Add ``sluice fixtures``."""
    app.add_typer(fixtures_app, name="fixtures")
