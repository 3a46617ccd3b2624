"""``sluice eval`` and ``sluice tune``: a workflow's classification path on labelled data.

``eval`` runs every row of a ``text,category`` CSV through the cascade of the workflow's
``classify`` step (models uncached, one ticket at a time, as production sees them) and reports
accuracy, macro-F1, escalation rate, cost per 1,000 tickets and latency percentiles.
``tune`` asks each tier about a golden set once, picks the thresholds that reach a target
accuracy at the lowest cost, and with ``--write`` puts them into the workflow file.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from sluice.cli.common import JsonFlag, fail, print_json
from sluice.cli.progress import Progress, QuietFlag
from sluice.config import load_settings
from sluice.errors import ConfigError, SluiceError
from sluice.models.base import Model
from sluice.models.cascade import Cascade, Tier
from sluice.models.prices import money
from sluice.suites.labelled import eval_figures, run_rows
from sluice.workflow.model import Step, Workflow
from sluice.workflow.registry import WorkflowRegistry

AppArg = Annotated[Path, typer.Argument(help="App directory (holds sluice.yaml and workflows).")]
DataOpt = Annotated[Path, typer.Option("--data", help="Labelled CSV with text,category columns.")]
WorkflowOpt = Annotated[
    str | None,
    typer.Option("--workflow", help="Workflow to use (default: the one that classifies)."),
]


def _classify_step(registry: WorkflowRegistry, name: str | None) -> tuple[Workflow, Step]:
    found = [
        (wf, step)
        for wf in registry
        if name is None or wf.name == name
        for step in wf.steps
        if step.uses == "classify"
    ]
    if not found:
        raise ConfigError(
            "no workflow with a 'classify' step" + (f" named {name!r}" if name else "")
        )
    if len(found) > 1:
        names = ", ".join(f"{wf.name}.{step.name}" for wf, step in found)
        raise ConfigError(f"several classify steps ({names}); choose one with --workflow")
    return found[0]


def _load(app_dir: Path, workflow: str | None) -> tuple[Workflow, Step, dict[str, Model], Path]:
    from sluice.models.registry import build_models

    settings = load_settings(app_dir)
    assert settings.workflows_dir is not None
    registry = WorkflowRegistry.from_directory(settings.workflows_dir, settings.pools)
    wf, step = _classify_step(registry, workflow)
    models = build_models(settings.extra.get("models") or {}, settings.app_dir)
    return wf, step, models, settings.workflows_dir


def _tiers(step: Step, models: Mapping[str, Model]) -> list[Tier]:
    spec: Any = step.options.get("cascade") or []
    try:
        return [Tier(models[str(t["model"])], float(t.get("threshold", 0.0))) for t in spec]
    except KeyError as exc:
        raise ConfigError(f"step {step.name!r}: cascade names unknown model {exc}") from None


def _rows(path: Path) -> tuple[list[str], list[str]]:
    from sluice.models.splits import read_examples

    examples = read_examples(path)
    if not examples:
        raise ConfigError(f"{path}: no rows")
    return [e.text for e in examples], [e.label for e in examples]


async def evaluate(
    cascade: Cascade,
    texts: Sequence[str],
    gold: Sequence[str],
    on_row: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run each text through ``cascade``; the figures of ``sluice eval``. ``on_row`` is
    called after each text (progress). The snapshots of ``sluice test`` keep the same."""
    return eval_figures(await run_rows(cascade, texts, on_row), gold)


def eval_command(
    app_dir: AppArg, data: DataOpt, workflow: WorkflowOpt = None,
    as_json: JsonFlag = False, quiet: QuietFlag = False,
) -> None:  # fmt: skip
    """Evaluate the workflow's classification path on a labelled CSV (progress on standard
    error)."""
    try:
        _, step, models, _ = _load(app_dir, workflow)
        texts, gold = _rows(data)
        with Progress("evaluated", len(texts), unit="rows", quiet=quiet or as_json) as progress:
            cascade = Cascade(_tiers(step, models))
            figures = asyncio.run(evaluate(cascade, texts, gold, progress.advance))
    except (SluiceError, OSError) as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(orjson.dumps(figures).decode())
        return
    lat = figures["latency_ms"]
    typer.echo(
        f"rows {figures['n']}  accuracy {figures['accuracy']:.4f}  macro-F1"
        f" {figures['macro_f1']:.4f}  escalation {figures['escalation_rate']:.3f}\n"
        f"cost per 1,000 tickets {figures['cost_per_1k']:.4f}  latency ms p50 {lat['p50']:.2f}"
        f" p95 {lat['p95']:.2f} p99 {lat['p99']:.2f}"
    )


def write_thresholds(path: Path, step: Step, thresholds: Sequence[float]) -> None:
    """Replace the thresholds of ``step``'s cascade in the workflow file, keeping the rest."""
    text = path.read_text()
    spec: Any = step.options.get("cascade") or []
    for tier, value in zip(spec, thresholds, strict=False):
        pattern = re.compile(
            rf"(model:\s*{re.escape(str(tier['model']))}\s*,\s*threshold:\s*)[0-9.eE+-]+"
        )
        text, count = pattern.subn(rf"\g<1>{value:.4f}", text)
        if count != 1:
            raise ConfigError(
                f"{path}: cannot find '{{model: {tier['model']}, threshold: ...}}' to update"
            )
    path.write_text(text)


def tune_command(
    app_dir: AppArg, data: DataOpt, workflow: WorkflowOpt = None,
    target: Annotated[float, typer.Option(help="Accuracy to reach on the data.")] = 0.935,
    max_escalation: Annotated[
        float | None, typer.Option(help="Most tickets that may pass the first tier.")
    ] = None,
    write: Annotated[
        bool, typer.Option("--write", help="Write the thresholds into the workflow.")
    ] = False,
    as_json: JsonFlag = False, quiet: QuietFlag = False,
) -> None:  # fmt: skip
    """Pick cascade thresholds that reach ``--target`` accuracy at the lowest cost (progress
    per tier on standard error)."""
    from sluice.models.tuning import collect_outcomes, tune_thresholds

    try:
        wf, step, models, wf_dir = _load(app_dir, workflow)
        texts, gold = _rows(data)
        tiers = _tiers(step, models)

        async def outcomes(progress: Progress) -> list[Any]:
            collected = []
            for t in tiers:
                price = getattr(t.model, "price_per_call", None)
                collected.append(await collect_outcomes(t.model, texts, cost_per_call=price))
                progress.advance()
            return collected

        with Progress("tiers asked", len(tiers), unit="tiers", quiet=quiet or as_json) as bar:
            asked = asyncio.run(outcomes(bar))
        plan = tune_thresholds(asked, gold, target, max_escalation=max_escalation or 1.0)
    except (SluiceError, OSError, ValueError) as exc:
        raise fail(exc) from None
    written: Path | None = None
    if write:
        matches = [p for p in wf_dir.glob("*.y*ml") if f"name: {wf.name}" in p.read_text()]
        if len(matches) != 1:
            raise fail(ConfigError(f"cannot tell which file defines workflow {wf.name!r}"))
        try:
            write_thresholds(matches[0], step, plan.thresholds)
        except ConfigError as exc:
            raise fail(exc) from None
        written = matches[0]
    if as_json:
        print_json(
            {
                "workflow": wf.name,
                "step": step.name,
                "thresholds": list(plan.thresholds),
                "accuracy": plan.accuracy,
                "escalation_rate": plan.escalation_rate,
                "mean_cost": money(plan.mean_cost),
                "target": target,
                "reached_target": plan.reached_target,
                "written": None if written is None else str(written),
            }
        )
        return
    typer.echo(
        f"thresholds {', '.join(f'{t:.4f}' for t in plan.thresholds)}: accuracy"
        f" {plan.accuracy:.4f}, escalation {plan.escalation_rate:.3f}, mean cost"
        f" {plan.mean_cost:.6f}"
        + ("" if plan.reached_target else f" (target {target} not reached)")
    )
    if written is not None:
        typer.echo(f"wrote {written}")


def register(app: typer.Typer) -> None:
    """Add ``sluice eval`` and ``sluice tune``."""
    app.command("eval")(eval_command)
    app.command("tune")(tune_command)
