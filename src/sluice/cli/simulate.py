"""``sluice simulate-model``: serve the model simulator for load tests and chaos drills."""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from sluice.errors import ConfigError, SluiceError
from sluice.models.base import Model

# Inside an app directory: the BANKING77 training split the simulator's answerer learns from.
_DEFAULT_DATA = Path("data/banking77/train.csv")


def default_data(app_dir: Path | None) -> Path:
    """The simulator's training CSV when ``--data`` is not given: the app's copy of BANKING77,
    else the triage example's, found from the package and never from the working directory
    (the command works from anywhere)."""
    from sluice.drills.apps import EXAMPLE_TRIAGE

    return (EXAMPLE_TRIAGE if app_dir is None else app_dir) / _DEFAULT_DATA


def simulate_model(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8900,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    p50_ms: Annotated[float, typer.Option(help="Median latency; 0 answers at once.")] = 800.0,
    p95_ms: Annotated[float, typer.Option(help="95th percentile latency.")] = 2800.0,
    error_rate: Annotated[float, typer.Option(help="Share of requests answered 500.")] = 0.0,
    throttle_rate: Annotated[float, typer.Option(help="Share answered 429.")] = 0.0,
    invalid_rate: Annotated[float, typer.Option(help="Share answered off-schema.")] = 0.0,
    max_concurrency: Annotated[
        int, typer.Option(help="Requests in flight beyond which it answers 429; 0: no limit.")
    ] = 0,
    retry_after: Annotated[float, typer.Option(help="Retry-After seconds on 429.")] = 1.0,
    mode: Annotated[
        str,
        typer.Option(help="classify: every answer is a label; generate: text, JSON, tool calls."),
    ] = "classify",
    tool_call_rate: Annotated[
        float, typer.Option(help="In generate mode, share of tool requests answered by a call.")
    ] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed for latency and faults.")] = None,
    app_dir: Annotated[
        Path | None, typer.Option("--app", help="App directory whose models --model names.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model (from the app config) that answers.")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="text,category CSV for the built-in TF-IDF answerer (default:"
            " data/banking77/train.csv of --app, else of the triage example)."
        ),
    ] = None,
) -> None:
    """Serve an OpenAI-compatible simulator answering with a real local model."""
    from sluice.drills.simulator import ModelSimulator, SimulatorSettings
    from sluice.drills.simulator_server import serve

    settings = SimulatorSettings(
        p50_ms=p50_ms,
        p95_ms=p95_ms,
        error_rate=error_rate,
        throttle_rate=throttle_rate,
        invalid_rate=invalid_rate,
        retry_after_s=retry_after,
        max_concurrency=max_concurrency,
        mode=mode,
        tool_call_rate=tool_call_rate,
        seed=seed,
    )
    try:
        answerer = _resolve_model(app_dir, model, data)
        simulator = ModelSimulator(answerer, settings)
    except SluiceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    latency = f"p50 {p50_ms:g} ms, p95 {p95_ms:g} ms" if p50_ms > 0 else "no latency"
    typer.echo(
        f"simulating model {answerer.name!r} ({answerer.version}) on http://{host}:{port}/v1 "
        f"({latency}, errors {error_rate:g}, 429s {throttle_rate:g}, "
        f"max concurrency {max_concurrency or 'unlimited'})",
        err=True,
    )
    serve(simulator, host=host, port=port)


def _resolve_model(app_dir: Path | None, name: str | None, data: Path | None) -> Model:
    """The app's model named ``name`` when the app has a model registry, else the built-in one."""
    build = _registry_builder()
    if app_dir is not None and name and data is None and build is not None:
        from sluice.config import load_settings

        spec = load_settings(app_dir).extra.get("models", {})
        models = build(spec, app_dir)
        if inspect.isawaitable(models):
            models = asyncio.run(_await(models))
        if not isinstance(models, Mapping) or name not in models:
            known = ", ".join(sorted(models)) if isinstance(models, Mapping) else "none"
            raise ConfigError(f"models.{name}: no such model in {app_dir} (known: {known})")
        resolved: Model = models[name]
        return resolved
    from sluice.drills.simulator_answerer import TfidfAnswerer

    path = data or default_data(app_dir)
    typer.echo(f"training the built-in TF-IDF answerer on {path}", err=True)
    return TfidfAnswerer.from_csv(path, name=name or "sim-tfidf")


def _registry_builder() -> Any:
    # The registry arrives with the app config's model section; until then, and for apps
    # without one, the simulator falls back to its own trained answerer.
    try:
        registry = importlib.import_module("sluice.models.registry")
    except ModuleNotFoundError:
        return None
    return getattr(registry, "build_models", None)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def register(app: typer.Typer) -> None:
    """Add ``simulate-model`` to the ``sluice`` command."""
    app.command("simulate-model")(simulate_model)
