"""PII commands: ``sluice pii mask`` masks text from standard input, one text per line."""

from __future__ import annotations

import sys
from typing import Annotated

import orjson
import typer

from sluice.errors import SluiceError
from sluice.guard.pii import DEFAULT_TYPES, PiiMasker

_TYPE_NAMES = ", ".join(DEFAULT_TYPES)


def mask(
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help='One JSON object per line: {"masked", "entities": [{"type", "start", "end"}]}.',
        ),
    ] = False,
    types: Annotated[
        list[str] | None,
        typer.Option("--type", help=f"Only these types (repeatable): {_TYPE_NAMES}."),
    ] = None,
) -> None:
    """Mask PII in each line of standard input and print the masked lines.

    Each line is one text: placeholders are numbered per line. With --json, entity offsets
    index the input line in Unicode code points.
    """
    try:
        masker = PiiMasker(types or None)
    except SluiceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    out = sys.stdout
    for raw in sys.stdin:
        line = raw.rstrip("\r\n")
        result = masker.mask(line)
        if json_output:
            record = {
                "masked": result.masked,
                "entities": [
                    {"type": e.type.value, "start": e.start, "end": e.end} for e in result.entities
                ],
            }
            out.write(orjson.dumps(record).decode())
            out.write("\n")
        else:
            out.write(result.masked)
            out.write("\n")
    out.flush()


def register(app: typer.Typer) -> None:
    """Add the ``pii`` command group to ``app``."""
    pii_app = typer.Typer(name="pii", help="Find and mask PII.", no_args_is_help=True)
    pii_app.command("mask")(mask)
    app.add_typer(pii_app, name="pii")
