"""``sluice ci init`` writes a pipeline with the four gates; ``sluice ci security`` is one.

``init --provider github|gitlab [--dir D]`` writes ``.github/workflows/sluice-gates.yml`` or
``.gitlab-ci.yml`` under D (the repository root): unit, contract, security and prompt
regression, each a job with a JUnit report, on every push and pull/merge request
(:mod:`sluice.contracts.pipeline`). ``security APP`` runs bandit over the app's step code,
detect-secrets over its files and checks that the lock file pins every version
(:mod:`sluice.contracts.security`); exit code 1 when one fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.common import JsonFlag, fail, print_json

ci_app = typer.Typer(help="Set up and run the CI gates.", no_args_is_help=True)


@ci_app.command("init")
def init(
    provider: Annotated[str, typer.Option(help="github or gitlab.")],
    root: Annotated[Path, typer.Option("--dir", help="Repository root to write into.")] = Path(),
    app_dir: Annotated[str, typer.Option("--app", help="The app, relative to the root.")] = ".",
    lock: Annotated[str, typer.Option(help="The lock file, relative to the root.")] = (
        "requirements/lock.txt"
    ),
    tests: Annotated[str, typer.Option(help="The tests folder for the unit gate.")] = "tests",
    install: Annotated[
        str, typer.Option(help="Install command (default: pip install the lock file and -e .).")
    ] = "",
    force: Annotated[bool, typer.Option(help="Overwrite an existing pipeline file.")] = False,
) -> None:
    """Write the pipeline file and print its path."""
    from sluice.contracts.pipeline import PipelineOptions, write_pipeline

    options = PipelineOptions(app=app_dir, lock=lock, tests=tests, install=install)
    try:
        path = write_pipeline(root, provider, options, force)
    except (ValueError, FileExistsError) as exc:
        raise fail(exc) from None
    typer.echo(str(path))


@ci_app.command("security")
def security(
    app_dir: Annotated[Path, typer.Argument(help="App directory (its step code is scanned).")],
    lock: Annotated[Path, typer.Option(help="Lock file whose versions must be pinned.")] = Path(
        "requirements/lock.txt"
    ),
    scan: Annotated[
        list[Path] | None, typer.Option(help="More paths to scan for secrets (repeatable).")
    ] = None,
    junit: Annotated[Path | None, typer.Option(help="Write a JUnit XML report here.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run bandit, detect-secrets and the lock check; one line per check."""
    from sluice.contracts.security import run_security
    from sluice.suites import write_junit
    from sluice.suites.contract_gate import case_of

    if not app_dir.is_dir():
        raise fail(FileNotFoundError(f"app directory {app_dir} does not exist"))
    results = run_security(app_dir, lock, scan or [])
    if junit is not None:
        write_junit(junit, [case_of(result, "security") for result in results])
    if as_json:
        print_json([r.as_dict() for r in results])
    else:
        for result in results:
            typer.echo(f"{'PASS' if result.passed else 'FAIL'}  {result.message}")
    if not all(r.passed for r in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``sluice ci``."""
    app.add_typer(ci_app, name="ci")
