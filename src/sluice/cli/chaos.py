"""``sluice chaos DRILL``: hurt a real deployment of an app and report what survived."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from sluice.testing.drills import kill_worker

DRILLS = ("kill-worker",)


def chaos(
    drill: Annotated[str, typer.Argument(help=f"One of: {', '.join(DRILLS)}.")],
    app_dir: Annotated[Path, typer.Option("--app", help="App directory.")] = Path(),
    workflow: Annotated[str, typer.Option(help="Workflow to send events to.")] = "triage",
    data: Annotated[
        Path | None, typer.Option(help="CSV with a text column: one event per row, as {text}.")
    ] = None,
    events: Annotated[int, typer.Option(help="How many events to send.")] = 2000,
    kills: Annotated[int, typer.Option(help="How many times to kill a worker.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON object.")] = False,
) -> None:
    """Run a drill against the app started for real; exit 1 when it fails."""
    if drill not in DRILLS:
        typer.echo(f"error: unknown drill {drill!r} (known: {', '.join(DRILLS)})", err=True)
        raise typer.Exit(2)
    inputs: list[dict[str, Any]]
    if data is not None:
        with data.open(newline="") as fh:
            texts = [row["text"] for row in csv.DictReader(fh)]
        inputs = [{"text": texts[i % len(texts)]} for i in range(events)]
    else:
        inputs = [{"name": f"drill {i}"} for i in range(events)]
    report = asyncio.run(
        kill_worker(
            app_dir, workflow, inputs, kills=kills, progress=lambda m: typer.echo(m, err=True)
        )
    )
    figures = report.as_dict()
    if as_json:
        typer.echo(orjson.dumps(figures).decode())
    else:
        for name, value in figures.items():
            typer.echo(f"{name:13} {value}")
    raise typer.Exit(0 if report.passed else 1)


def register(app: typer.Typer) -> None:
    """Add ``sluice chaos``."""
    app.command("chaos")(chaos)
