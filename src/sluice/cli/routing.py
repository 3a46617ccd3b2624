"""``sluice routing show|set``: which models and providers tenants, workflows and API keys may
use (:mod:`sluice.governance.routing`), versioned in the store; each change audited."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from sluice.cli.common import AppDir, JsonFlag, fail, print_json
from sluice.cli.governed import AsName, Why
from sluice.cli.managed_common import with_managed
from sluice.errors import ConfigError
from sluice.governance import LOCAL_ADMIN, Principal
from sluice.governance.managed import ManagedConfig
from sluice.governance.routing import parse_rules, unknown_names
from sluice.workflow.registry import WorkflowRegistry

routing_app = typer.Typer(help="Model routing rules, managed in the store.", no_args_is_help=True)
#: The largest rules file read (the document is small; anything bigger is a mistake).
MAX_FILE_BYTES = 1 << 20


def _read_rules(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: {len(data)} bytes, over {MAX_FILE_BYTES}")
    try:
        raw = yaml.safe_load(data) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping (tenants, workflows, keys)")
    try:
        parse_rules(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: invalid routing rules", exc.problems) from None
    return raw


@routing_app.command("show")
def show(app_dir: AppDir = Path(), who: AsName = LOCAL_ADMIN, as_json: JsonFlag = False) -> None:
    """Print the rules in force: version, who set them and when, the rules."""

    async def go(managed: ManagedConfig, principal: Principal) -> dict[str, Any]:
        return await managed.show_routing(principal)

    current = with_managed(app_dir, who, go)
    if as_json:
        print_json(current)
        return
    if not current["version"]:
        typer.echo("no routing rules: every model the app declares may be used")
        return
    typer.echo(f"# routing v{current['version']}, set by {current['created_by']}")
    typer.echo(yaml.safe_dump(current["rules"], sort_keys=True), nl=False)


@routing_app.command("set")
def set_rules(
    rules_file: Annotated[Path, typer.Argument(help="YAML or JSON file of the rules.")],
    app_dir: AppDir = Path(),
    who: AsName = LOCAL_ADMIN,
    why: Why = "",
    as_json: JsonFlag = False,
) -> None:
    """Replace the rules with RULES_FILE's (a new version; the old ones are kept)."""
    try:
        rules = _read_rules(rules_file)
    except ConfigError as exc:
        raise fail(exc) from None

    async def go(managed: ManagedConfig, principal: Principal) -> dict[str, Any]:
        return await managed.set_routing(principal, rules, why)

    current = with_managed(app_dir, who, go)
    _warn_unknown(app_dir, rules)
    if as_json:
        print_json(current)
        return
    typer.echo(f"routing v{current['version']} set")


def _warn_unknown(app_dir: Path, rules: dict[str, Any]) -> None:
    """Warn (stderr) about rules naming models or workflows this app does not declare."""
    from sluice.config import load_settings

    try:
        settings = load_settings(app_dir)
        workflows: list[str] = []
        if settings.workflows_dir is not None and settings.workflows_dir.is_dir():
            registry = WorkflowRegistry.from_directory(settings.workflows_dir, settings.pools)
            workflows = [w.name for w in registry]
    except ConfigError:
        return
    models = list(settings.extra.get("models") or {})
    for warning in unknown_names(parse_rules(rules), models, workflows):
        typer.echo(f"warning: {warning}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``sluice routing``."""
    app.add_typer(routing_app, name="routing")
