"""``sluice contract check APP``: every contract check of an app, with a JUnit report.

Inbound (each webhook source's schema through the real way in), consumer (the app's requests
to each partner against the partner's spec, through a mock) and Sluice's own API against its
OpenAPI document. Exit code 1 when a check fails, 2 when the contracts cannot be read.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.common import JsonFlag, fail, print_json

contract_app = typer.Typer(
    help="Check an app's contracts with its sources and partners.", no_args_is_help=True
)


@contract_app.command("check")
def check(
    app_dir: Annotated[Path, typer.Argument(help="App directory (holds sluice.yaml).")],
    examples: Annotated[int, typer.Option(help="Generated payloads per source.")] = 30,
    events: Annotated[int, typer.Option(help="Events run per webhook partner.")] = 5,
    api_examples: Annotated[
        int, typer.Option(help="Requests per operation of the own API; 0 skips that check.")
    ] = 10,
    junit: Annotated[Path | None, typer.Option(help="Write a JUnit XML report here.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run the checks; one line per check (PASS/FAIL, the figures, the first problem)."""
    from sluice.contracts import ContractOptions, run_contracts
    from sluice.errors import SluiceError
    from sluice.suites import write_junit
    from sluice.suites.contract_gate import case_of

    options = ContractOptions(examples=examples, events=events, api_examples=api_examples)
    try:
        results = asyncio.run(run_contracts(app_dir, options))
    except SluiceError as exc:
        raise fail(exc) from None
    if junit is not None:
        write_junit(junit, [case_of(result, "contract") for result in results])
    if as_json:
        print_json([r.as_dict() for r in results])
    else:
        for result in results:
            typer.echo(f"{'PASS' if result.passed else 'FAIL'}  {result.message}")
        if not results:
            typer.echo(f"{app_dir}: no contracts (contracts/contracts.yaml) and no checks")
    if not all(r.passed for r in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``sluice contract``."""
    app.add_typer(contract_app, name="contract")
