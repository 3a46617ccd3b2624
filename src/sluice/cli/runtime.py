"""Runtime commands: ``serve``, ``worker``, ``run`` and ``runs list/show/replay``."""

from __future__ import annotations

import asyncio
import signal
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from sluice.app import SluiceApp
from sluice.cli.common import AppDir, JsonAlways, JsonFlag, fail, print_json, with_store
from sluice.cli.governed import AsName, Why, governed
from sluice.config import AppSettings, load_settings
from sluice.errors import NotFoundError, SluiceError
from sluice.governance import LOCAL_ADMIN, Authorized
from sluice.ingress import admin_actions as actions
from sluice.ingress.http import run_view
from sluice.ingress.intake import Ingress
from sluice.ingress.settings import IngressSettings, parse_ingress
from sluice.store.base import EventState
from sluice.telemetry.logs import configure_logging

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from sluice.ingress.server import ServerLimits

LogFormat = Annotated[
    str,
    typer.Option(
        "--log-format",
        envvar="SLUICE_LOG_FORMAT",
        help="text (for people) or json (one object a line).",
    ),
]


def serve(
    app_dir: Annotated[
        Path, typer.Argument(envvar="SLUICE_APP", help="App directory (holds sluice.yaml).")
    ] = Path(),
    host: Annotated[
        str, typer.Option(envvar="SLUICE_HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="SLUICE_PORT", help="Port to listen on.")] = 8000,
    workers: Annotated[
        bool, typer.Option(envvar="SLUICE_WORKERS", help="Run the worker pools in this process.")
    ] = True,
    limit_concurrency: Annotated[
        int | None,
        typer.Option(
            envvar="SLUICE_LIMIT_CONCURRENCY",
            help="Most HTTP requests in flight; more get 503 (default 1000).",
        ),
    ] = None,
    max_connections: Annotated[
        int | None,
        typer.Option(
            envvar="SLUICE_MAX_CONNECTIONS",
            help="Most open connections; more are refused (default 8192).",
        ),
    ] = None,
    max_connections_per_client: Annotated[
        int | None,
        typer.Option(
            envvar="SLUICE_MAX_CONNECTIONS_PER_CLIENT",
            help="Most open connections from one client address (default 1024).",
        ),
    ] = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(
            envvar="SLUICE_HEADER_TIMEOUT",
            help="Seconds to receive a request's line and headers (default 10).",
        ),
    ] = None,
    body_timeout: Annotated[
        float | None,
        typer.Option(
            envvar="SLUICE_BODY_TIMEOUT", help="Seconds to receive a request's body (default 30)."
        ),
    ] = None,
    keep_alive_timeout: Annotated[
        int | None,
        typer.Option(
            envvar="SLUICE_KEEP_ALIVE_TIMEOUT",
            help="Seconds an idle connection is kept open (default 5).",
        ),
    ] = None,
    max_header_bytes: Annotated[
        int | None,
        typer.Option(
            envvar="SLUICE_MAX_HEADER_BYTES",
            help="Most bytes of request line and headers (default 65536).",
        ),
    ] = None,
    max_headers: Annotated[
        int | None,
        typer.Option(envvar="SLUICE_MAX_HEADERS", help="Most request headers (default 100)."),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            envvar="SLUICE_PROCESSES",
            min=1,
            help="Serving processes on the port (SO_REUSEPORT), each with its own app; "
            "a supervisor replaces any that dies.",
        ),
    ] = 1,
    log_format: LogFormat = "text",
) -> None:
    """Serve the HTTP API, with the worker pools in the same process by default.

    Server limits: the options, else ingress.server in sluice.yaml, else the defaults; with
    --processes they hold per process. Every option can be set instead by its environment
    variable (SLUICE_<OPTION>, shown beside it; SLUICE_APP for the app directory), for
    containers and process managers; an option on the command line wins.
    """
    from sluice.ingress.processes import Supervisor
    from sluice.ingress.server import raise_open_files_limit, server_limits

    configure_logging(log_format)
    try:
        settings = load_settings(app_dir)
        limits = server_limits(
            (settings.extra.get("ingress") or {}).get("server"),
            max_in_flight=limit_concurrency,
            max_connections=max_connections,
            max_connections_per_client=max_connections_per_client,
            header_timeout_s=header_timeout,
            body_timeout_s=body_timeout,
            keep_alive_s=keep_alive_timeout,
            max_header_bytes=max_header_bytes,
            max_headers=max_headers,
        )
        ingress = parse_ingress(settings)
        if processes == 1:  # the app is built here so that its configuration errors show
            built = _build(settings, ingress, workers)
    except SluiceError as exc:
        raise fail(exc) from None
    limits = raise_open_files_limit(limits)
    if processes == 1:
        _serve_one(built, host, port, limits, reuse_port=False)
        return
    # Each child builds its own app after the fork: no store connection or thread is shared.
    supervisor = Supervisor(
        processes,
        lambda: _serve_one(_build(settings, ingress, workers), host, port, limits, reuse_port=True),
    )
    raise typer.Exit(supervisor.run())


def _build(
    settings: AppSettings, ingress: IngressSettings, workers: bool
) -> tuple[SluiceApp, ASGIApp]:
    from sluice.asgi import create_http_app

    app = SluiceApp.from_settings(settings, run_pools=None if workers else ())
    return app, create_http_app(app, Ingress(app, ingress))


def _serve_one(
    built: tuple[SluiceApp, ASGIApp],
    host: str,
    port: int,
    limits: ServerLimits,
    *,
    reuse_port: bool,
) -> int:
    """Serve the app in this process until stopped: 0, or 3 when it failed to start."""
    import uvicorn

    from sluice.ingress.processes import reuse_port_socket
    from sluice.ingress.server import server_config

    app, asgi = built
    refused = app.metrics.refused
    config = server_config(
        asgi,
        host,
        port,
        limits,
        on_refusal=lambda reason: refused.labels(reason).inc(),
        timeout_graceful_shutdown=10,
        # The server's own logs go through the process's handler, which masks PII, instead
        # of uvicorn's default handler, which would write tracebacks unmasked.
        log_config=None,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[reuse_port_socket(host, port)] if reuse_port else None)
    return 0 if server.started else 3


def worker(
    app_dir: Annotated[
        Path, typer.Argument(envvar="SLUICE_APP", help="App directory (holds sluice.yaml).")
    ] = Path(),
    pool: Annotated[
        list[str] | None,
        typer.Option("--pool", envvar="SLUICE_POOL", help="Pool to run (repeatable; default all)."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            envvar="SLUICE_CONCURRENCY", help="Override the pool's concurrency in this process."
        ),
    ] = None,
    log_format: LogFormat = "text",
) -> None:
    """Run worker pools only (no HTTP), until interrupted.

    Every option can be set instead by its environment variable (SLUICE_<OPTION>, shown
    beside it; SLUICE_POOL takes names separated by spaces); an option on the command line
    wins.
    """
    configure_logging(log_format)

    async def main() -> None:
        settings = load_settings(app_dir)
        pools = pool or list(settings.pools)
        caps = dict.fromkeys(pools, concurrency) if concurrency else None
        app = SluiceApp.from_settings(settings, run_pools=pools, concurrency=caps)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # SIGTERM (what process managers send) stops cleanly like Ctrl-C: running steps get
        # a moment to finish and leased jobs are handed back at once, not after the lease.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with app:
            typer.echo(f"worker {app.runtime.owner} running pools: {', '.join(pools)}")
            await stop.wait()
        typer.echo("worker stopped")

    try:
        asyncio.run(main())
    except SluiceError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        pass


def run(
    workflow: Annotated[str, typer.Argument(help="Workflow name.")],
    input_file: Annotated[
        Path, typer.Option("--input", help="JSON file with the input ('-' for stdin).")
    ],
    app_dir: AppDir = Path(),
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the result.")] = 60.0,
    tenant: Annotated[str, typer.Option(help="Tenant to run as.")] = "default",
) -> None:
    """Run one event through a workflow in this process and print the result.

    The event takes the same way in as an API call (schema, PII masking, quarantine), only
    without HTTP and authentication.
    """

    async def main() -> int:
        raw = sys.stdin.buffer.read() if str(input_file) == "-" else input_file.read_bytes()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            typer.echo(f"error: {input_file} is not JSON: {exc}", err=True)
            return 2
        settings = load_settings(app_dir)
        async with SluiceApp.from_settings(settings) as app:
            gateway = Ingress(app, parse_ingress(settings))
            # Parsed here, not by read_json: the shape limits are checked on the way in.
            receipt = await gateway.api_run(tenant, workflow, raw, data, None, shape_checked=False)
            record = await app.runtime.wait(receipt.event_id, timeout)
        print_json(run_view(record))
        return 0 if record.state is EventState.DONE else 1

    try:
        code = asyncio.run(main())
    except (SluiceError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


runs_app = typer.Typer(help="Inspect and replay runs (events) in the store.", no_args_is_help=True)


@runs_app.command("list")
def runs_list(
    app_dir: AppDir = Path(),
    state: Annotated[
        EventState | None, typer.Option(help="Only runs in this state (e.g. dead).")
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List runs, newest first."""

    async def go(app: SluiceApp) -> None:
        records = await app.store.list_events(state, workflow, limit)
        if as_json:
            # The keys of `runs show` and GET /v1/runs/{id}, so one parser reads both.
            print_json([{"event_id": rec.id, "workflow": rec.workflow, "version": rec.version,
                         "status": rec.state.value, "error": rec.error}
                        for rec in records])  # fmt: skip
            return
        for rec in records:
            error = f"  {rec.error}" if rec.error else ""
            typer.echo(f"{rec.id}  {rec.workflow}@{rec.version}  {rec.state.value}{error}")

    with_store(app_dir, go)


@runs_app.command("show")
def runs_show(event_id: str, app_dir: AppDir = Path(), as_json: JsonAlways = False) -> None:
    """Show one run as JSON: status, step timings, result or error; for a dead run, the step
    that died, its attempts and the error. (--json is accepted for symmetry: the output is
    JSON either way.)"""

    async def go(app: SluiceApp) -> None:
        record = await app.store.get_event(event_id)
        view = run_view(record)
        died = await app.store.dead_step(event_id) if record.state is EventState.DEAD else None
        if died is not None:
            index, attempts = died
            try:
                name = app.registry.get(record.workflow, record.version).steps[index].name
            except (NotFoundError, IndexError):  # that version is no longer loaded
                name = f"step {index}"
            view["steps"].append(
                {"step": name, "status": "dead", "attempts": attempts, "error": record.error}
            )
        print_json(view)

    with_store(app_dir, go)


@runs_app.command("replay")
def runs_replay(
    event_ids: Annotated[list[str], typer.Argument(help="Dead runs to replay.")],
    app_dir: AppDir = Path(),
    as_name: AsName = LOCAL_ADMIN,
    why: Why = "",
) -> None:
    """Requeue dead runs with a fresh budget (a running server or worker picks them up)."""

    async def go(app: SluiceApp, door: Authorized) -> int:
        failed = 0
        for event_id in event_ids:
            if await door.change(
                "run.replay", f"run/{event_id}",
                partial(actions.replay_run, app, event_id),
            ):  # fmt: skip
                typer.echo(f"{event_id}: requeued")
            else:
                typer.echo(f"{event_id}: not dead, left as it is", err=True)
                failed += 1
        return failed

    failed = governed(app_dir, "runs replay", as_name, why, go)
    raise typer.Exit(1 if failed else 0)


def register(app: typer.Typer) -> None:
    """Add the runtime commands to the ``sluice`` command."""
    app.command()(serve)
    app.command()(worker)
    app.command()(run)
    app.add_typer(runs_app, name="runs")
