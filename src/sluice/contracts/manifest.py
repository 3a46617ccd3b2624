"""An app's contracts: ``APP_DIR/contracts/contracts.yaml``.

::

    sources:                       # one entry per webhook source of sluice.yaml
      helpdesk:
        schema: sources/helpdesk.schema.yaml     # what the sender POSTs (JSON Schema)
    partners:                      # the APIs the app calls
      delivery:
        spec: partners/delivery.openapi.yaml     # OpenAPI 3, or one JSON Schema of the body
        client: webhook            # the deliver step's signed POST, through the workflow
        workflow: triage           # default: the only workflow with a deliver step
        step: deliver              # default: the workflow's steps that use `deliver`
      llm:
        spec: partners/openai-chat.openapi.yaml
        client: openai             # the OpenAI-compatible model client
        labels: data/banking77/categories.json   # optional: labels of the classify calls

Paths are relative to the contracts folder, except ``labels``, which is relative to the app
(like the ``models:`` section's). Every problem is reported at once with its path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sluice.config import unknown_problems
from sluice.contracts.schemas import SchemaError, check_schema
from sluice.contracts.spec import Spec, inline_refs, load_spec
from sluice.errors import ConfigError

CONTRACTS_DIR = "contracts"
MANIFEST = "contracts.yaml"
#: The Sluice code that calls a partner, by the name a manifest gives it.
CLIENTS = ("webhook", "openai")


@dataclass(frozen=True, slots=True)
class SourceContract:
    """What one webhook source sends."""

    name: str
    schema: Mapping[str, Any]
    path: Path


@dataclass(frozen=True, slots=True)
class PartnerContract:
    """One API the app calls, the spec it must conform to, and the code that calls it."""

    name: str
    spec: Spec
    client: str
    workflow: str | None = None
    step: str | None = None
    labels: Path | None = None


@dataclass(frozen=True, slots=True)
class Contracts:
    """The contracts of one app (empty when it has no manifest)."""

    app_dir: Path
    sources: tuple[SourceContract, ...] = ()
    partners: tuple[PartnerContract, ...] = ()


def _source(name: str, spec: Any, folder: Path, problems: list[str]) -> SourceContract | None:
    where = f"sources.{name}"
    if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), str):
        problems.append(f"{where}: expected {{schema: FILE}}")
        return None
    problems += unknown_problems(spec, ("schema",), f"{where}.", "setting")
    path = folder / spec["schema"]
    try:
        raw = yaml.safe_load(path.read_text())
        schema = inline_refs(raw, raw if isinstance(raw, Mapping) else {}, str(path))
        check_schema(schema, str(path))
    except OSError as exc:
        problems.append(f"{where}.schema: cannot read {path}: {exc.strerror}")
        return None
    except (yaml.YAMLError, SchemaError) as exc:
        problems.append(f"{where}.schema: {exc}")
        return None
    return SourceContract(name, schema, path)


def _partner(
    name: str, spec: Any, folder: Path, app_dir: Path, problems: list[str]
) -> PartnerContract | None:
    where = f"partners.{name}"
    if not isinstance(spec, Mapping) or not isinstance(spec.get("spec"), str):
        problems.append(f"{where}: expected {{spec: FILE, client: {' | '.join(CLIENTS)}}}")
        return None
    problems += unknown_problems(
        spec, ("spec", "client", "workflow", "step", "labels"), f"{where}.", "setting"
    )
    client = spec.get("client")
    if client not in CLIENTS:
        problems.append(f"{where}.client: must be one of {', '.join(CLIENTS)}, got {client!r}")
        return None
    try:
        loaded = load_spec(folder / spec["spec"], name)
    except SchemaError as exc:
        problems.append(f"{where}.spec: {exc}")
        return None
    labels = spec.get("labels")
    return PartnerContract(
        name,
        loaded,
        str(client),
        workflow=str(spec["workflow"]) if spec.get("workflow") else None,
        step=str(spec["step"]) if spec.get("step") else None,
        labels=app_dir / str(labels) if labels else None,
    )


def load_contracts(app_dir: Path) -> Contracts:
    """Read the app's contracts manifest; an app without one has no contracts."""
    folder = app_dir / CONTRACTS_DIR
    path = folder / MANIFEST
    if not path.exists():
        return Contracts(app_dir)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping")
    problems = unknown_problems(raw, ("sources", "partners"), "", "section")
    sources: list[SourceContract] = []
    partners: list[PartnerContract] = []
    sections: dict[str, Mapping[str, Any]] = {}
    for section in ("sources", "partners"):
        given = raw.get(section) or {}
        if not isinstance(given, Mapping):
            problems.append(f"{section}: must be a mapping of name to settings")
            given = {}
        sections[section] = given
    for name, spec in sections["sources"].items():
        if (source := _source(str(name), spec, folder, problems)) is not None:
            sources.append(source)
    for name, spec in sections["partners"].items():
        if (partner := _partner(str(name), spec, folder, app_dir, problems)) is not None:
            partners.append(partner)
    if problems:
        raise ConfigError(f"invalid contracts in {path}", [f"{MANIFEST}: {p}" for p in problems])
    return Contracts(app_dir, tuple(sources), tuple(partners))
