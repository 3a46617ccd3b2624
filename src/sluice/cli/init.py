"""``sluice init DIR --template hello|triage|gateway``: scaffold a working app from an example.

The examples travel inside the wheel (:mod:`sluice.examples`), so a ``pip install``-ed Sluice
can start an app with no file of the repository. The command prints the next commands to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.common import fail, print_json
from sluice.errors import SluiceError
from sluice.examples import EXAMPLES, scaffold

# What to run next, per template; {dir} is the new app's directory.
_NEXT: dict[str, tuple[str, ...]] = {
    "hello": (
        'echo \'{{"name": "ada"}}\' > in.json',
        "sluice run greet --input in.json --app {dir}",
        "sluice serve {dir} --port 8000",
    ),
    "triage": (
        "pip install 'sluicegate[models]'   # the local models (CPU torch, MiniLM, wordllama)",
        "python -m sluice.demo --app {dir}   # trains, indexes, serves and replays 2,000 tickets",
        "sluice serve {dir} --port 8000",
    ),
    "gateway": (
        "sluice serve {dir} --no-workers --port 8000",
        "sluice apikey create --tenant acme --app {dir}",
    ),
}


def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the app (missing or empty).")],
    template: Annotated[
        str, typer.Option("--template", "-t", help=f"One of: {', '.join(EXAMPLES)}.")
    ] = "hello",
    force: Annotated[
        bool, typer.Option("--force", help="Write into a non-empty directory.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the files written and next steps as JSON.")
    ] = False,
) -> None:
    """Create a working app in DIRECTORY from one of the example apps."""
    try:
        files = scaffold(template, directory, force=force)
    except SluiceError as exc:
        raise fail(exc) from None
    steps = [line.format(dir=directory) for line in _NEXT[template]]
    if as_json:
        rel = [str(path.relative_to(directory)) for path in files]
        print_json({"directory": str(directory), "template": template, "files": rel, "next": steps})
        return
    typer.echo(f"created {directory} from the {template} template ({len(files)} files)")
    typer.echo("next:")
    for line in steps:
        typer.echo(f"  {line}")


def register(app: typer.Typer) -> None:
    """Add ``sluice init``."""
    app.command("init")(init)
