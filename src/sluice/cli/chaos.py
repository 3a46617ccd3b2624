"""``sluice chaos DRILL``: hurt a real deployment of an app and report what survived."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from sluice.drills.base import DrillOptions, DrillReport
from sluice.drills.flood import flood
from sluice.drills.kill_cache import kill_cache_drill
from sluice.drills.kill_worker import kill_worker_drill
from sluice.drills.throttle_model import throttle_model

#: Every drill by name; each takes the CLI's options and returns a report with a verdict.
DRILLS: dict[str, Callable[[DrillOptions], Coroutine[Any, Any, DrillReport]]] = {
    "kill-worker": kill_worker_drill,
    "throttle-model": throttle_model,
    "flood": flood,
    "kill-cache": kill_cache_drill,
}


def chaos(
    drill: Annotated[str, typer.Argument(help="The drill: kill-worker, ...")],
    app_dir: Annotated[Path, typer.Option("--app", help="App directory.")] = Path(),
    workflow: Annotated[str, typer.Option(help="Workflow to send events to.")] = "triage",
    data: Annotated[
        Path | None, typer.Option(help="CSV with a text column: one event per row, as {text}.")
    ] = None,
    events: Annotated[int, typer.Option(help="How many events to send.")] = 2000,
    kills: Annotated[int, typer.Option(help="kill-worker: how many times to kill.")] = 3,
    factor: Annotated[
        float, typer.Option(help="throttle-model, flood: offered load over capacity.")
    ] = 10.0,
    seconds: Annotated[float, typer.Option(help="How long a timed drill offers load.")] = 20.0,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON object.")] = False,
) -> None:
    """Run a drill against the app started for real; exit 1 when it fails."""
    runner = DRILLS.get(drill)
    if runner is None:
        typer.echo(f"error: unknown drill {drill!r} (known: {', '.join(DRILLS)})", err=True)
        raise typer.Exit(2)
    inputs: list[dict[str, Any]]
    if data is not None:
        with data.open(newline="") as fh:
            texts = [row["text"] for row in csv.DictReader(fh)]
        inputs = [{"text": texts[i % len(texts)]} for i in range(events)]
    else:
        inputs = [{"name": f"drill {i}"} for i in range(events)]
    options = DrillOptions(
        app_dir=app_dir, workflow=workflow, inputs=inputs, kills=kills, factor=factor,
        seconds=seconds, progress=lambda m: typer.echo(m, err=True),
    )  # fmt: skip
    report = asyncio.run(runner(options))
    figures = report.as_dict()
    if as_json:
        typer.echo(orjson.dumps(figures).decode())
    else:
        for name, value in figures.items():
            typer.echo(f"{name:24} {value}")
    raise typer.Exit(0 if report.passed else 1)


def register(app: typer.Typer) -> None:
    """Add ``sluice chaos``."""
    app.command("chaos")(chaos)
