"""``sluice test``: run the gates an app declares in ``tests/suites.yaml`` (golden suites,
snapshots) and pass or fail the app as a whole.

``sluice test APP`` prints a summary table (one line per gate and suite) and the failures,
one line each; ``--json`` prints one JSON document instead; ``--junit FILE`` also writes
JUnit XML (one test case per golden case, snapshot metric and contract check). The exit code
is 0 only when every case of every gate passed, 1 when a case failed and 2 when the suites
could not run (a malformed file, an unknown gate).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from sluice.cli.common import fail, print_json
from sluice.errors import SluiceError
from sluice.suites import SuiteRun, Target, run_suites, summarize, write_junit
from sluice.suites.results import as_json as case_json

AppArg = Annotated[Path, typer.Argument(help="App directory (holds sluice.yaml and tests/).")]
JunitOpt = Annotated[
    Path | None, typer.Option("--junit", help="Also write JUnit XML to this file.")
]
ReleaseOpt = Annotated[
    str | None, typer.Option("--release", help="The release under test (recorded in reports).")
]
GateOpt = Annotated[str | None, typer.Option("--gate", help="Run only this gate.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]

#: Failures listed under the table; the rest are counted (all of them are in --json/--junit).
_SHOWN_FAILURES = 20


def _table(run: SuiteRun, seconds: float) -> str:
    lines = [f"{'gate':<10} {'suite':<24} {'cases':>6} {'failed':>6} {'flaky':>6}  result"]
    for group in summarize(run.results):
        lines.append(
            f"{group.gate:<10} {group.suite:<24} {group.cases:>6} {group.failed:>6}"
            f" {group.flaky:>6}  {'pass' if group.passed else 'FAIL'}"
        )
    failures = [r for r in run.results if not r.passed]
    for result in failures[:_SHOWN_FAILURES]:
        lines.append(f"FAIL {result.gate} {result.suite}: {result.message}")
    if len(failures) > _SHOWN_FAILURES:
        lines.append(f"... and {len(failures) - _SHOWN_FAILURES} more failures")
    for result in run.results:
        if result.flaky and result.passed:
            lines.append(f"flaky {result.gate} {result.suite}: {result.message}")
    release = f" (release {run.release})" if run.release else ""
    verdict = "passed" if run.passed else "FAILED"
    lines.append(f"{verdict}: {len(run.results)} cases in {seconds:.1f}s{release}")
    return "\n".join(lines)


def run_command(
    app_dir: AppArg,
    junit: JunitOpt = None,
    as_json: JsonOpt = False,
    release: ReleaseOpt = None,
    gate: GateOpt = None,
) -> None:
    """Run the app's golden suites and snapshots; exit 0 only when every gate passes."""
    started = time.perf_counter()
    try:
        target = Target.load(app_dir, release=release)
        run = run_suites(target, only=gate)
    except (SluiceError, OSError) as exc:
        raise fail(exc) from None
    seconds = time.perf_counter() - started
    if junit is not None:
        try:
            write_junit(junit, run.results, release)
        except OSError as exc:
            raise fail(exc) from None
    if as_json:
        print_json(
            {
                "passed": run.passed,
                "release": release,
                "seconds": round(seconds, 3),
                "groups": [
                    {
                        "gate": g.gate,
                        "suite": g.suite,
                        "cases": g.cases,
                        "failed": g.failed,
                        "flaky": g.flaky,
                        "seconds": round(g.seconds, 3),
                    }
                    for g in summarize(run.results)
                ],
                "cases": [case_json(r) for r in run.results],
            }
        )
    else:
        typer.echo(_table(run, seconds))
    if not run.passed:
        raise typer.Exit(1)


class _RunByDefault(TyperGroup):
    """``sluice test APP ...`` means ``sluice test run APP ...``: the first argument is a
    subcommand only when it names one (``record``, ``snapshot``)."""

    # The context's type is typer's vendored click Context, reached through this signature.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def register(app: typer.Typer) -> None:
    """Add ``sluice test`` (``run`` by default, ``record``, ``snapshot``)."""
    group = typer.Typer(
        cls=_RunByDefault,
        help="Run the app's golden suites and snapshots (tests/suites.yaml); `sluice test APP`.",
        no_args_is_help=True,
    )
    group.command("run")(run_command)
    app.add_typer(group, name="test")
