"""What the command modules share: the app-directory option, store access, error exits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.errors import SluiceError

T = TypeVar("T")
AppDir = Annotated[Path, typer.Option("--app", help="App directory (holds sluice.yaml).")]
# Every list and show command takes --json: one JSON document on stdout (a list or an object
# with stable keys), the same data as the table, for scripts.
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print one JSON document instead of the table.")
]
# The show commands print JSON already; they take --json too so that scripts need not know.
JsonAlways = Annotated[
    bool, typer.Option("--json", help="Accepted for symmetry: the output is JSON either way.")
]


def fail(exc: BaseException, code: int = 2) -> typer.Exit:
    """Print ``error: ...`` to stderr and return the Exit to raise."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code)


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON (keys in the order given, never coloured)."""
    typer.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode())


def with_store(app_dir: Path, fn: Callable[[SluiceApp], Awaitable[T]]) -> T:
    """Run ``fn`` with the app's store open and no workers; errors exit with code 2."""

    async def go() -> T:
        app = SluiceApp.from_settings(load_settings(app_dir), run_pools=())
        await app.store.open()
        try:
            return await fn(app)
        finally:
            await app.store.aclose()

    try:
        return asyncio.run(go())
    except SluiceError as exc:
        raise fail(exc) from None
