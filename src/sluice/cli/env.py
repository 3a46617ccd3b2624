"""``sluice env up|list|show|seed|test|down APP ...``: ephemeral environments of an app.

The environments are declared in ``APP/environments.yaml`` (``sluice.envs.spec``); ``up`` makes
one (its own schema or database, key prefix or file), ``seed`` loads fixture files into it,
``test`` runs the app's suites against it, ``down`` removes every trace of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from sluice.cli.common import JsonAlways, JsonFlag, fail, print_json
from sluice.cli.progress import Progress, QuietFlag
from sluice.envs import records
from sluice.envs.fixtures import seed_environment
from sluice.envs.labelled import write_labelled
from sluice.envs.lifecycle import environment_down, environment_up
from sluice.envs.records import EnvironmentRecord
from sluice.envs.spec import load_environments
from sluice.envs.suite_run import run_environment_suites
from sluice.errors import SluiceError
from sluice.suites import summarize, write_junit
from sluice.suites.results import as_json as case_json

T = TypeVar("T")
env_app = typer.Typer(help="Ephemeral environments: up, list, show, seed, test, down.",
                      no_args_is_help=True)  # fmt: skip
AppArg = Annotated[Path, typer.Argument(help="App directory (holds environments.yaml).")]
NameArg = Annotated[str, typer.Argument(help="Environment name, as declared.")]


def _run(coro: Awaitable[T]) -> T:
    async def go() -> T:
        return await coro

    try:
        return asyncio.run(go())
    except SluiceError as exc:
        raise fail(exc) from None


def _where(record: EnvironmentRecord) -> tuple[str, str]:
    if record.schema is not None:
        store = f"postgres schema {record.schema}"
    elif record.database is not None:
        store = f"postgres database {record.database}"
    else:
        store = f"sqlite {record.files[0] if record.files else '?'}"
    kv = "memory" if record.kv_prefix is None else f"redis prefix {record.kv_prefix}"
    return store, kv


def _record(app_dir: Path, name: str) -> EnvironmentRecord:
    try:
        record = records.load(app_dir.resolve(), name)
    except SluiceError as exc:
        raise fail(exc) from None
    if record is None:
        raise fail(SluiceError(f"no environment {name!r} in {app_dir} (sluice env up it first)"))
    return record


@env_app.command("up")
def up(app_dir: AppArg, name: NameArg, as_json: JsonFlag = False) -> None:
    """Make the environment: its own store (migrated) and KV; refused if it exists."""
    record = _run(environment_up(app_dir, name))
    if as_json:
        print_json(record.to_json())
        return
    store, kv = _where(record)
    typer.echo(f"environment {name} is up: {store}; kv {kv}")


@env_app.command("list")
def list_envs(app_dir: AppArg, as_json: JsonFlag = False) -> None:
    """The app's environments: declared ones, and whether each is up."""
    try:
        declared = load_environments(app_dir.resolve())
        live = {r.name: r for r in records.load_all(app_dir.resolve())}
    except SluiceError as exc:
        raise fail(exc) from None
    rows = []
    for name in sorted(set(declared) | set(live)):
        record = live.get(name)
        store, kv = _where(record) if record is not None else ("-", "-")
        rows.append({"name": name, "declared": name in declared,
                     "status": record.status if record else "down",
                     "store": store, "kv": kv,
                     "release": record.release if record else declared[name].release,
                     "created_at": record.created_at if record else None})  # fmt: skip
    if as_json:
        print_json(rows)
        return
    for row in rows:
        since = ""
        if isinstance(row["created_at"], float):
            since = datetime.fromtimestamp(row["created_at"], UTC).isoformat(timespec="seconds")
        typer.echo(f"{row['name']:<16} {row['status']:<7} {row['store']}  kv {row['kv']}  {since}")


@env_app.command("show")
def show(app_dir: AppArg, name: NameArg, as_json: JsonAlways = False) -> None:
    """One environment's record as JSON: its URLs (passwords hidden), resources, seeds."""
    print_json(_record(app_dir, name).to_json())


@env_app.command("seed")
def seed(
    app_dir: AppArg,
    name: NameArg,
    fixtures: Annotated[
        list[Path] | None,
        typer.Option("--fixtures", help="Fixture files (default: the environment's own)."),
    ] = None,
    quiet: QuietFlag = False,
) -> None:
    """Load fixture files (from `sluice fixtures export`) into the environment's store."""
    record = _record(app_dir, name)
    files = list(fixtures or [])
    if not files:
        try:
            spec = load_environments(app_dir.resolve()).get(name)
        except SluiceError as exc:
            raise fail(exc) from None
        files = list(spec.fixtures) if spec is not None else []
    if not files:
        raise fail(SluiceError(f"environment {name!r} declares no fixtures: pass --fixtures F"))
    with Progress(f"seeding {name}", _rows(files), unit="rows", quiet=quiet) as progress:
        counts = _run(
            seed_environment(app_dir.resolve(), record, files, lambda d, _t: progress.update(d))
        )
    typer.echo(
        f"seeded {name}: {counts.events} events ({counts.steps} step results),"
        f" {counts.quarantine} quarantine entries; {counts.skipped} already there"
    )


def _rows(files: list[Path]) -> int:
    """Rows in the fixture files (lines less header and trailer), for the progress total."""
    total = 0
    for path in files:
        try:
            with path.open("rb") as handle:
                total += max(0, sum(1 for _ in handle) - 2)
        except OSError:
            pass  # reading it for real reports the problem with its path
    return total


@env_app.command("test")
def run_tests(
    app_dir: AppArg,
    name: NameArg,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write JUnit XML to this file.")
    ] = None,
    gate: Annotated[str | None, typer.Option("--gate", help="Run only this gate.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run the app's suites (`sluice test`) against the environment's store and KV."""
    record = _record(app_dir, name)
    started = time.perf_counter()
    try:
        run = run_environment_suites(record, only=gate)
        if junit is not None:
            write_junit(junit, run.results, run.release)
    except (SluiceError, OSError) as exc:
        raise fail(exc) from None
    seconds = time.perf_counter() - started
    groups = summarize(run.results)
    if as_json:
        print_json({
            "environment": name, "passed": run.passed, "release": run.release,
            "seconds": round(seconds, 3),
            "groups": [{"gate": g.gate, "suite": g.suite, "cases": g.cases, "failed": g.failed,
                        "flaky": g.flaky} for g in groups],
            "cases": [case_json(r) for r in run.results],
        })  # fmt: skip
    else:
        for g in groups:
            verdict = "pass" if g.passed else "FAIL"
            typer.echo(f"{g.gate:<10} {g.suite:<24} {g.cases:>6} cases {g.failed:>4} failed  "
                       f"{verdict}")  # fmt: skip
        for result in [r for r in run.results if not r.passed][:20]:
            typer.echo(f"FAIL {result.gate} {result.suite}: {result.message}")
        verdict = "passed" if run.passed else "FAILED"
        typer.echo(f"{verdict} in environment {name}: {len(run.results)} cases in {seconds:.1f}s")
    if not run.passed:
        raise typer.Exit(1)


@env_app.command("labelled")
def labelled(
    app_dir: AppArg,
    name: NameArg,
    out: Annotated[Path, typer.Option("--out", help="The text,category CSV to write.")],
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's events.")] = None,
    text_field: Annotated[str, typer.Option(help="The input field holding the text.")] = "text",
    label_field: Annotated[
        str, typer.Option(help="The input field holding the label.")
    ] = "category",
) -> None:
    """Write the environment's done events as a labelled CSV (for eval and snapshots)."""
    record = _record(app_dir, name)
    report = _run(write_labelled(record, out, workflow=workflow, text_field=text_field,
                                 label_field=label_field))  # fmt: skip
    typer.echo(f"wrote {report.path}: {report.rows} rows; {report.skipped} events skipped")


@env_app.command("down")
def down(app_dir: AppArg, name: NameArg, as_json: JsonFlag = False) -> None:
    """Remove every trace of the environment (schema or database, keys, files), checked."""
    report = _run(environment_down(app_dir, name))
    if report is None:
        if as_json:
            print_json({"name": name, "removed": [], "left": [], "existed": False})
        else:
            typer.echo(f"no environment {name!r} in {app_dir}: nothing to do")
        return
    if as_json:
        print_json({"name": name, "removed": list(report.removed), "left": [], "existed": True})
        return
    gone = "; ".join(report.removed) or "nothing outside the app directory"
    typer.echo(f"environment {name} is down; removed {gone}; nothing left")


def register(app: typer.Typer) -> None:
    """Add ``sluice env``."""
    app.add_typer(env_app, name="env")
