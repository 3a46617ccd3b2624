"""``sluice config check APP``: every problem of an app's configuration, without starting it.

Loading ``sluice.yaml`` already rejects unknown sections and keys; this command then runs the
parser of every section (the ones the services would run when the app starts), loads the
workflows and the prompt templates, and prints each problem with its path. Nothing is opened:
no store, no KV, no model is trained or loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from sluice.cli.common import print_json
from sluice.config import (
    CONFIG_FILE,
    SECTIONS,
    AppSettings,
    load_settings,
    parse_model_groups,
    parse_settings,
)
from sluice.errors import ConfigError, SluiceError

Check = Callable[[AppSettings], list[str]]


def _raised(fn: Callable[[], object]) -> list[str]:
    """The problems of ``fn``'s :class:`ConfigError`, or none."""
    try:
        fn()
    except ConfigError as exc:
        return exc.problems or [str(exc)]
    return []


def _store(settings: AppSettings) -> list[str]:
    if settings.store.startswith(("sqlite:///", "postgresql://", "postgres://")):
        return []
    return ["store: unsupported URL (expected sqlite:///PATH or postgresql://HOST/DB)"]


def _kv(settings: AppSettings) -> list[str]:
    if settings.kv.startswith(("memory://", "redis://", "rediss://")):
        return []
    return ["kv: unsupported URL (expected memory:// or redis://HOST:PORT/DB)"]


def _models(settings: AppSettings) -> list[str]:
    from sluice.models.chat_model import ChatModelBuilder
    from sluice.models.registry import validate_models

    spec = settings.extra.get("models")
    if spec is None:
        return []
    return validate_models(spec, validators={"openai": ChatModelBuilder().validate})


def _prices(settings: AppSettings) -> list[str]:
    from sluice.models.prices import validate_prices

    raw = settings.extra.get("prices")
    return [] if raw is None else validate_prices(raw)


def _spend(settings: AppSettings) -> list[str]:
    from sluice.reliability.config import parse_spend

    return _raised(lambda: parse_spend(settings.extra.get("spend")))


def _reliability(settings: AppSettings) -> list[str]:
    from sluice.reliability.config import parse_reliability

    return _raised(lambda: parse_reliability(settings.extra.get("reliability")))


def _indexes(settings: AppSettings) -> list[str]:
    from sluice.retrieval.config import parse_indexes

    return _raised(lambda: parse_indexes(settings.extra.get("indexes"), settings.app_dir))


def _caches(settings: AppSettings) -> list[str]:
    from sluice.cache.config import parse_caches

    return _raised(lambda: parse_caches(settings.extra.get("caches")))


def _ingress(settings: AppSettings) -> list[str]:
    # One parser reads ingress, sources and rate_limits together.
    from sluice.ingress.server import server_limits
    from sluice.ingress.settings import parse_ingress

    server = (settings.extra.get("ingress") or {}).get("server")
    return _raised(lambda: parse_ingress(settings)) + _raised(lambda: server_limits(server))


def _egress(settings: AppSettings) -> list[str]:
    from dataclasses import replace

    from sluice.outbound.egress import Egress

    # The outbound: section has its own check; this one reads the older egress: section.
    alone = replace(settings, extra={k: v for k, v in settings.extra.items() if k != "outbound"})
    return _raised(lambda: Egress.from_settings(alone))


def _outbound(settings: AppSettings) -> list[str]:
    from sluice.outbound.policy import EgressPolicy

    return _raised(lambda: EgressPolicy.from_config(settings.extra.get("outbound")))


def _metrics(settings: AppSettings) -> list[str]:
    from sluice.telemetry.metrics import Metrics

    return _raised(lambda: Metrics().configure(settings.extra.get("metrics")))


def _alerts(settings: AppSettings) -> list[str]:
    from sluice.outbound.egress import app_policy
    from sluice.telemetry.alerts import AlertSettings

    raw = settings.extra.get("alerts")
    if raw is None:
        return []
    try:
        allow = app_policy(settings).allow
    except ConfigError:
        allow = frozenset()  # reported by the outbound and egress checks
    return _raised(lambda: AlertSettings.from_config(raw, allow))


def _encryption(settings: AppSettings) -> list[str]:
    from sluice.app import encryption_codec

    return _raised(lambda: encryption_codec(settings))


def _telemetry(settings: AppSettings) -> list[str]:
    from sluice.telemetry.settings import parse_telemetry

    return _raised(lambda: parse_telemetry(settings.extra.get("telemetry"), settings.env))


def _gateway(settings: AppSettings) -> list[str]:
    from sluice.ai_gateway.config import parse_gateway

    extra = settings.extra
    if extra.get("gateway") is None:
        return []
    return _raised(
        lambda: parse_gateway(
            extra["gateway"], extra.get("prices"), settings.env, priced="spend" in extra
        )
    )


def _nothing(settings: AppSettings) -> list[str]:
    # Checked by load_settings itself (pools, runtime, workflows, model_groups) or by another
    # section's parser (sources and rate_limits by the ingress parser).
    return []


# The parser of each section of sluice.yaml, in the order of config.SECTIONS.
SECTION_CHECKS: Mapping[str, Check] = {
    "store": _store,
    "kv": _kv,
    "workflows": _nothing,
    "pools": _nothing,
    "runtime": _nothing,
    "models": _models,
    "model_groups": _nothing,
    "prices": _prices,
    "spend": _spend,
    "reliability": _reliability,
    "indexes": _indexes,
    "caches": _caches,
    "rate_limits": _nothing,
    "sources": _nothing,
    "ingress": _ingress,
    "egress": _egress,
    "outbound": _outbound,
    "metrics": _metrics,
    "alerts": _alerts,
    "encryption": _encryption,
    "telemetry": _telemetry,
    "gateway": _gateway,
}


def _files(settings: AppSettings) -> tuple[list[str], int]:
    """Problems of the workflow files (checked against the models, the model groups, the
    prompt templates and the spend section) and of the prompt templates; and how many
    workflows loaded."""
    from sluice.prompts import PROMPTS_DIR, PromptSet, load_prompts
    from sluice.reliability.config import parse_spend
    from sluice.reliability.services import check_degrade_paths
    from sluice.steps.classify_checks import check_classify_steps
    from sluice.steps.generate_checks import check_generate_steps, workflow_files
    from sluice.workflow.registry import WorkflowRegistry

    assert settings.workflows_dir is not None  # load_settings always sets it
    prompts: PromptSet | None = None

    def load() -> None:
        nonlocal prompts
        if (settings.app_dir / PROMPTS_DIR).is_dir():
            prompts = load_prompts(settings.app_dir)

    unloaded = _raised(load)
    problems = list(unloaded)
    try:
        registry = WorkflowRegistry.from_directory(settings.workflows_dir, settings.pools)
    except ConfigError as exc:
        shown = settings.workflows_dir.name
        return problems + [f"{shown}/{p}" for p in exc.problems or [str(exc)]], 0
    try:
        spend = parse_spend(settings.extra.get("spend"))
    except ConfigError:
        spend = None  # reported with the spend section
    models = settings.extra.get("models")
    files = workflow_files(settings.workflows_dir, settings.app_dir)
    problems += _raised(lambda: check_degrade_paths(spend, registry, models))
    problems += _raised(lambda: check_classify_steps(list(registry), models, files=files))
    if unloaded:  # the templates did not load: the generate steps cannot be checked
        return problems, len(registry)
    problems += _raised(
        lambda: check_generate_steps(
            list(registry), prompts, list(models or {}), groups=settings.model_groups,
            files=files, search_path=settings.workflows_dir, app_dir=settings.app_dir,
        )
    )  # fmt: skip
    return problems, len(registry)


def check_app(app_dir: Path) -> dict[str, Any]:
    """Every configuration problem of the app in ``app_dir``: ``{"app", "ok", "problems",
    "sections", "workflows"}``, each problem prefixed with the file it is in."""
    problems: list[str] = []
    raw = _raw_config(app_dir)
    try:
        settings = load_settings(app_dir)
    except ConfigError as exc:
        problems = exc.problems or [str(exc)]
        # Unknown sections (or unusable model groups) stop the load; without them the rest
        # can still be checked.
        known = {k: v for k, v in raw.items() if k in SECTIONS}
        unusable: list[str] = []
        parse_model_groups(known.get("model_groups"), known.get("models"), unusable)
        if unusable:
            known.pop("model_groups")
        try:
            settings = parse_settings(known, app_dir.resolve())
        except ConfigError:
            return {"app": str(app_dir), "ok": False, "problems": problems, "sections": [],
                    "workflows": 0}  # fmt: skip
    problems += [
        f"{CONFIG_FILE}: {problem}"
        for name in SECTIONS
        for problem in SECTION_CHECKS[name](settings)
    ]
    from sluice.governance.secrets import reference_problems

    # ${secret:NAME} references: their syntax (whether each is set is the store's to say).
    problems += [f"{CONFIG_FILE}: {p}" for p in reference_problems(dict(settings.extra))]
    file_problems, workflows = _files(settings)
    problems += file_problems
    return {"app": str(settings.app_dir), "ok": not problems, "problems": problems,
            "sections": [name for name in SECTIONS if name in raw],
            "workflows": workflows}  # fmt: skip


def _raw_config(app_dir: Path) -> Mapping[str, Any]:
    """sluice.yaml as parsed YAML, or empty when it is absent or unreadable (load_settings
    reports why)."""
    import yaml

    path = app_dir / CONFIG_FILE
    try:
        raw = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, Mapping) else {}


config_app = typer.Typer(help="Check an app's configuration.", no_args_is_help=True)


@config_app.command("check")
def check(
    app_dir: Annotated[Path, typer.Argument(help="App directory (holds sluice.yaml).")] = Path(),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Load the app's sluice.yaml, workflows and prompts without starting anything; print
    every problem with its path (exit 1), or a one-line summary (exit 0)."""
    try:
        report = check_app(app_dir)
    except SluiceError as exc:  # e.g. the app directory does not exist
        report = {"app": str(app_dir), "ok": False, "problems": [str(exc)], "sections": [],
                  "workflows": 0}  # fmt: skip
    if as_json:
        print_json(report)
    elif report["ok"]:
        typer.echo(
            f"{report['app']}: ok ({len(report['sections'])} sections,"
            f" {report['workflows']} workflows)"
        )
    else:
        for problem in report["problems"]:
            typer.echo(problem)
        typer.echo(f"{len(report['problems'])} problem(s)", err=True)
    raise typer.Exit(0 if report["ok"] else 1)


@config_app.command("schema")
def schema(
    workflow: Annotated[
        bool, typer.Option("--workflow", help="The schema of a workflow file instead.")
    ] = False,
) -> None:
    """Print the JSON Schema of sluice.yaml (or of a workflow file), for editors and CI."""
    from sluice.cli.config_schema import app_schema, workflow_schema

    print_json(workflow_schema() if workflow else app_schema())


@config_app.command("reference")
def reference() -> None:
    """Print the configuration reference (docs/configuration.md) generated from the schema."""
    from sluice.cli.config_schema import reference as render

    typer.echo(render(), nl=False)


def register(app: typer.Typer) -> None:
    """Add ``sluice config``."""
    app.add_typer(config_app, name="config")
