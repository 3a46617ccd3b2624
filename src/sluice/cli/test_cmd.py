"""``sluice test``: run the gates an app declares in ``tests/suites.yaml`` (golden suites,
snapshots) and pass or fail the app as a whole.

``sluice test APP`` prints a summary table (one line per gate and suite) and the failures,
one line each; ``--json`` prints one JSON document instead; ``--junit FILE`` also writes
JUnit XML (one test case per golden case, snapshot metric and contract check). The exit code
is 0 only when every case of every gate passed, 1 when a case failed and 2 when the suites
could not run (a malformed file, an unknown gate).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from sluice.cli.common import fail, print_json
from sluice.cli.progress import Progress, QuietFlag
from sluice.errors import SluiceError
from sluice.suites import CaseResult, SuiteRun, Target, run_suites, summarize, write_junit
from sluice.suites.golden import latest_suite, propose
from sluice.suites.manifest import load_gates
from sluice.suites.registry import GATES
from sluice.suites.results import as_json as case_json
from sluice.suites.snapshot import (
    SnapshotGate,
    dump_snapshot,
    load_snapshot,
    measure,
    snapshot_path,
    updated,
)

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
    quiet: QuietFlag = False,
) -> None:
    """Run the app's golden suites and snapshots; exit 0 only when every gate passes (each
    gate's start and end on standard error)."""
    started = time.perf_counter()

    def on_gate(name: str, results: Sequence[CaseResult] | None, seconds: float) -> None:
        if quiet or as_json:
            return
        if results is None:
            typer.echo(f"{name}: running", err=True)
        else:
            failed = sum(not r.passed for r in results)
            typer.echo(f"{name}: {len(results)} cases, {failed} failed, {seconds:.1f}s", err=True)

    try:
        target = Target.load(app_dir, release=release)
        run = run_suites(target, only=gate, on_gate=on_gate)
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


SuiteOpt = Annotated[str, typer.Option("--suite", help="The golden suite to record.")]
WriteOpt = Annotated[
    bool, typer.Option("--write", help="Write without asking (else: ask on a terminal).")
]


def _confirmed(write: bool, what: str) -> bool:
    """``--write`` given, or the user said yes on a terminal; otherwise say how to write."""
    if write:
        return True
    if sys.stdin.isatty():
        return typer.confirm(f"write {what}?", default=False)
    typer.echo(f"not written: pass --write to write {what}")
    return False


def record_command(app_dir: AppArg, suite: SuiteOpt, write: WriteOpt = False) -> None:
    """Propose the next version of a golden suite from the app's current outputs: show the
    changes field by field, then write NAME.v<N+1>.yaml only with --write or a yes."""
    try:
        target = Target.load(app_dir)
        current = latest_suite(target.tests_dir, suite)
        with Progress("ran", len(current.cases), unit="cases") as progress:
            outputs = target.run_inputs(
                current.workflow, [c.input for c in current.cases], on_done=progress.advance
            )
        proposal = propose(current, outputs)
    except (SluiceError, OSError) as exc:
        raise fail(exc) from None
    for line in proposal.changes:
        typer.echo(f"  {line}")
    typer.echo(
        f"{current.name} v{current.version} -> v{current.version + 1}:"
        f" {len(proposal.changes)} changes, {proposal.kept} of {len(current.cases)} cases as"
        " they were"
    )
    if not _confirmed(write, str(proposal.path)):
        return
    proposal.path.write_text(proposal.text, encoding="utf-8")
    typer.echo(f"wrote {proposal.path}")


def snapshot_command(
    app_dir: AppArg,
    update: Annotated[
        bool, typer.Option("--update", help="Rewrite the snapshot's values (bands kept).")
    ] = False,
    name: Annotated[
        str | None,
        typer.Option("--snapshot", help="The snapshot (default: each one suites.yaml names)."),
    ] = None,
    write: WriteOpt = False,
) -> None:
    """Measure the app's snapshots and show what moved; with --update, rewrite them (asks on
    a terminal unless --write)."""
    try:
        target = Target.load(app_dir)
        names = [name] if name is not None else _snapshot_names(target)
        for one in names:
            path = snapshot_path(target.tests_dir, one)
            current = load_snapshot(path, target.app_dir, require_values=False)
            with Progress("repeats", current.repeats, unit="runs") as progress:
                measured = measure(current, target, lambda _: progress.advance())
            content, moved = updated(current, measured)
            for line in moved:
                typer.echo(f"  {line}")
            flips = len(measured.flaky_rows)
            typer.echo(
                f"{one}: {measured.rows} rows x {current.repeats} runs,"
                f" {statistics.median(measured.seconds):.2f}s per run, {flips} flaky rows"
            )
            if update and _confirmed(write, str(path)):
                path.write_text(dump_snapshot(content), encoding="utf-8")
                typer.echo(f"wrote {path}")
    except (SluiceError, OSError) as exc:
        raise fail(exc) from None


def _snapshot_names(target: Target) -> list[str]:
    gates = load_gates(target.tests_dir, GATES, only="snapshot")
    return [n for gate in gates if isinstance(gate, SnapshotGate) for n in gate.snapshots]


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
    group.command("record")(record_command)
    group.command("snapshot")(snapshot_command)
    app.add_typer(group, name="test")
