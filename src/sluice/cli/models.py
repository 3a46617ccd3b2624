"""Model commands: ``sluice train`` trains an app's local models, ``sluice split`` makes splits.

Training is cached: an artifact whose data, parameters and code version are unchanged is
reused, so running ``sluice train`` twice trains once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from sluice.cli.progress import Progress, QuietFlag
from sluice.errors import SluiceError


def train(
    app_dir: Annotated[Path, typer.Argument(help="App directory holding sluice.yaml.")],
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Only this model (repeatable).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Retrain even when a cached artifact exists.")
    ] = False,
    quiet: QuietFlag = False,
) -> None:
    """Train the local models declared under ``models:`` in APP_DIR/sluice.yaml (progress on
    standard error)."""
    from sluice.config import load_settings
    from sluice.models.registry import LOCAL_KINDS, build_local, validate_models

    try:
        spec: Any = load_settings(app_dir).extra.get("models")
        if not spec:
            typer.echo(f"error: no models section in {app_dir / 'sluice.yaml'}", err=True)
            raise typer.Exit(2)
        # Kinds this command cannot train (remote endpoints) are skipped, not rejected.
        local = {name: entry for name, entry in spec.items() if _kind(entry) in LOCAL_KINDS}
        problems = validate_models(local)
        unknown = sorted(set(model or ()) - set(local))
        problems += [f"--model {name}: no local model of that name" for name in unknown]
        if problems:
            typer.echo("error: invalid models section\n  " + "\n  ".join(problems), err=True)
            raise typer.Exit(2)
        chosen = {name: entry for name, entry in local.items() if not model or name in model}
        with Progress("models trained", len(chosen), unit="models", quiet=quiet) as progress:
            for name, entry in chosen.items():
                progress.note(f"{name}:")
                built = build_local(
                    name, entry, app_dir.resolve(), progress=progress.note, force=force
                )
                progress.advance()
                typer.echo(f"{name}\t{built.version}")
    except SluiceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _kind(entry: Any) -> Any:
    return entry.get("kind") if isinstance(entry, Mapping) else None


def split(
    source: Annotated[Path, typer.Argument(help="A text,category CSV.")],
    out_dir: Annotated[Path, typer.Argument(help="Where train/validation/replay.csv go.")],
    validation: Annotated[float, typer.Option(help="Share of each label for validation.")] = 0.15,
    replay: Annotated[float, typer.Option(help="Share of each label for replay.")] = 0.10,
    seed: Annotated[int, typer.Option(help="Seed of the per-label shuffles.")] = 77,
) -> None:
    """Split a labelled CSV into stratified train, validation and replay CSVs (deterministic)."""
    from sluice.models.splits import read_examples, write_splits

    try:
        paths = write_splits(source, out_dir, validation=validation, replay=replay, seed=seed)
    except (SluiceError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for name, path in paths.items():
        typer.echo(f"{name}\t{len(read_examples(path))}\t{path}")


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``split`` to the ``sluice`` command."""
    app.command("train")(train)
    app.command("split")(split)
