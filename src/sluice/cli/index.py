"""Index commands: ``sluice index build``, ``sluice index info`` and ``sluice index query``.

``build`` embeds the resolved tickets of an app (its ``text,category`` rows, each resolved by
its intent's knowledge-base template) and saves the index where the app loads it from, so
start-up reads vectors instead of computing them.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import orjson
import typer

from sluice.cli.common import JsonAlways, JsonFlag, print_json
from sluice.cli.progress import Progress, QuietFlag
from sluice.config import load_settings
from sluice.errors import SluiceError
from sluice.retrieval.config import IndexSettings, open_index, parse_indexes

AppArg = Annotated[Path, typer.Argument(help="App directory (holds sluice.yaml).")]
NameOpt = Annotated[str | None, typer.Option("--name", help="Index name from sluice.yaml.")]
EmbedderOpt = Annotated[
    str | None, typer.Option("--embedder", help="minilm or wordllama (overrides sluice.yaml).")
]
DEFAULT_INDEX = "tickets"


def _settings(app_dir: Path, name: str | None, embedder: str | None = None) -> IndexSettings:
    settings = load_settings(app_dir)
    configured = parse_indexes(settings.extra.get("indexes"), settings.app_dir)
    if name is None:
        name = next(iter(configured)) if len(configured) == 1 else DEFAULT_INDEX
    found = configured.get(name)
    if found is None:
        # An index not in sluice.yaml gets the documented defaults.
        found = parse_indexes({name: {}}, settings.app_dir)[name]
    return found if embedder is None else replace(found, embedder=embedder)


def _fail(exc: SluiceError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def build(
    app_dir: AppArg,
    data: Annotated[
        Path | None, typer.Option("--data", help="text,category CSV (default from sluice.yaml).")
    ] = None,
    name: NameOpt = None,
    embedder: EmbedderOpt = None,
    batch_size: Annotated[int, typer.Option(help="Texts embedded per batch.")] = 256,
    quiet: QuietFlag = False,
) -> None:
    """Embed an app's resolved tickets and save the index (progress on standard error)."""
    from sluice.models.splits import read_examples
    from sluice.retrieval.build import build_index, load_templates, resolved_tickets
    from sluice.retrieval.embedder import embedder_for
    from sluice.retrieval.persist import save_index

    try:
        settings = _settings(app_dir, name, embedder)
        examples = read_examples(data or settings.data)
        templates = load_templates(settings.templates, sorted({e.label for e in examples}))
        rows = resolved_tickets(examples, templates)
        started = time.perf_counter()
        with Progress("embedded", len(rows), unit="texts", quiet=quiet) as progress:
            index = build_index(
                rows,
                embedder_for(settings.embedder),
                batch_size=batch_size,
                name=settings.name,
                max_items=settings.max_items,
                progress=progress,
            )
        save_index(index, settings.path)
    except SluiceError as exc:
        _fail(exc)
        return
    summary = {
        "index": settings.name,
        "items": len(index),
        "embedder": index.embedder.name,
        "path": str(settings.path),
        "seconds": round(time.perf_counter() - started, 2),
    }
    typer.echo(orjson.dumps(summary).decode())


def info(app_dir: AppArg, name: NameOpt = None, as_json: JsonAlways = False) -> None:
    """Print the saved index's metadata as JSON: embedder, item count, format."""
    from sluice.retrieval.persist import read_meta

    try:
        settings = _settings(app_dir, name)
        meta = read_meta(settings.path)
    except SluiceError as exc:
        _fail(exc)
        return
    print_json({**meta, "path": str(settings.path)})


def query(
    app_dir: AppArg,
    text: Annotated[str, typer.Argument(help="The ticket text to find neighbours for.")],
    name: NameOpt = None,
    k: Annotated[int, typer.Option("-k", help="How many neighbours.")] = 5,
    embedder: EmbedderOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Load the saved index and print the k most similar tickets, one JSON object per line
    (with --json, one JSON list)."""
    try:
        settings = _settings(app_dir, name, embedder)
        index = open_index(settings, warm=False)
        found = index.search(text, k)
    except SluiceError as exc:
        _fail(exc)
        return
    if as_json:
        print_json([neighbour.as_dict() for neighbour in found])
        return
    for neighbour in found:
        typer.echo(orjson.dumps(neighbour.as_dict()).decode())


def register(app: typer.Typer) -> None:
    """Add the ``index`` command group to ``app``."""
    index_app = typer.Typer(
        name="index", help="Build and inspect retrieval indexes.", no_args_is_help=True
    )
    index_app.command("build")(build)
    index_app.command("info")(info)
    index_app.command("query")(query)
    app.add_typer(index_app, name="index")
