"""Build the manifest of one workflow of an app, as its files on disk are now.

Nothing is started and nothing is trained: a model artifact the workflow uses must exist
already (``sluice train APP``), else the build fails naming it. Paths in the manifest are
relative to the app directory, so the same app in another checkout gives the same release.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from sluice.config import AppSettings, load_settings
from sluice.errors import ConfigError
from sluice.models.artifacts import file_digest, is_complete
from sluice.models.registry import LOCAL_KINDS, models_dir, training_params, validate_models
from sluice.models.training import artifact_dir
from sluice.prompts import PromptSet, load_prompts
from sluice.releases.release import MANIFEST_FORMAT, Release, ReleaseError, canonical_json
from sluice.workflow.loader import load_workflow_file
from sluice.workflow.model import Step, Workflow

# Option keys whose values name models of the ``models:`` section, and prompt templates.
_MODEL_KEYS = frozenset({"model", "degrade_to"})
_TEMPLATE_KEYS = frozenset({"template", "prompt"})
#: The name Sluice is installed under (pyproject.toml).
DISTRIBUTION = "sluicegate"


def sluice_version() -> str:
    """The installed Sluice's version: what the code of a built-in step is pinned to."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _digest(path: Path) -> str:
    return "sha256:" + file_digest(path)


def _relative(path: Path, app_dir: Path) -> str | None:
    """``path`` relative to the app directory, or None when it lies outside it."""
    try:
        return path.resolve().relative_to(app_dir.resolve()).as_posix()
    except ValueError:
        return None


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of nested mappings and lists, depth first."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key), item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def find_workflow_file(settings: AppSettings, name: str) -> Path:
    """The file of ``settings``' workflow directory that defines workflow ``name``."""
    directory = settings.workflows_dir
    if directory is None or not directory.is_dir():
        raise ReleaseError(f"{settings.app_dir}: no workflow directory")
    found: list[str] = []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # loading it below (or `sluice config check`) reports the problem
        if isinstance(raw, Mapping) and raw.get("name") == name:
            return path
        if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
            found.append(raw["name"])
    known = ", ".join(sorted(found)) or "none"
    raise ReleaseError(f"unknown workflow {name!r} in {directory} (known: {known})")


def _step_source(step: Step, search_path: Path) -> Path:
    """The source file of a ``module:function`` step.

    A module beside the workflow file is looked up there, not through the import cache: a
    process that imported another app's module of the same name must not digest that one.
    """
    module = step.uses.partition(":")[0]
    base = search_path.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    source = inspect.getsourcefile(step.fn)
    if source is None:
        raise ReleaseError(f"step {step.name!r}: no source file for {step.uses!r}")
    return Path(source)


#: Options that name app code as ``module:function`` (a generate step's fallback and tools).
_CODE_KEYS = frozenset({"fallback", "tools"})


def _option_code(step: Step, search_path: Path, app_dir: Path) -> dict[str, Any]:
    """The app code a built-in step's options name: ``module:function`` -> file and digest."""
    found: dict[str, Any] = {}
    for key, value in _walk(step.options):
        if key not in _CODE_KEYS:
            continue
        for ref in _strings(value):
            if ":" not in ref:
                continue
            base = search_path.joinpath(*ref.partition(":")[0].split("."))
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    shown = _relative(candidate, app_dir) or str(candidate)
                    found[ref] = {"file": shown, "code": _digest(candidate)}
                    break
    return found


def _steps(workflow: Workflow, path: Path, app_dir: Path, version: str) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    for step in workflow.steps:
        entry: dict[str, Any] = {"uses": step.uses}
        if ":" in step.uses:
            source = _step_source(step, path.parent)
            entry["code"] = _digest(source)
            entry["file"] = _relative(source, app_dir) or step.uses.partition(":")[0]
        else:
            entry["code"] = f"sluice-{version}"
            named = _option_code(step, path.parent, app_dir)
            if named:  # a fallback or a tool of the app's: its code is part of the release
                entry["app_code"] = named
        steps[step.name] = entry
    return steps


def _files(workflow: Workflow, app_dir: Path) -> dict[str, str]:
    """Files of the app the steps' options name (routing rules, reply templates, ...)."""
    files: dict[str, str] = {}
    for step in workflow.steps:
        for _, value in _walk(step.options):
            if not isinstance(value, str) or "://" in value or not value.strip():
                continue
            path = app_dir / value
            shown = _relative(path, app_dir)
            if shown is not None and path.is_file():
                files[shown] = _digest(path)
    return files


def _prompts(workflow: Workflow, prompts: PromptSet, app_dir: Path) -> dict[str, Any]:
    used: dict[str, Any] = {}
    for step in workflow.steps:
        for key, value in _walk(step.options):
            if key not in _TEMPLATE_KEYS:
                continue
            for name in _strings(value):
                template = prompts.get(name)
                if template is None:
                    continue
                source = app_dir / template.source
                digest = _digest(source) if source.is_file() else ""
                used[template.name] = {"id": template.id, "digest": digest}
    return used


def _model_names(workflow: Workflow, prompts: PromptSet, declared: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for step in workflow.steps:
        for key, value in _walk(step.options):
            if key in _MODEL_KEYS:
                names.update(n for n in _strings(value) if n in declared)
            elif key in _TEMPLATE_KEYS:
                for name in _strings(value):
                    template = prompts.get(name)
                    if template is not None and template.model in declared:
                        names.add(str(template.model))
    return names


def _models(names: set[str], declared: Mapping[str, Any], app_dir: Path) -> dict[str, Any]:
    models: dict[str, Any] = {}
    for name in sorted(names):
        entry = declared[name]
        kind = entry.get("kind") if isinstance(entry, Mapping) else None
        if kind not in LOCAL_KINDS:
            # A remote endpoint or the simulator: its settings are what a release pins.
            config = hashlib.sha256(canonical_json(entry)).hexdigest()
            models[name] = {"kind": str(kind), "config": "sha256:" + config}
            continue
        problems = validate_models({name: entry})
        if problems:
            raise ReleaseError(f"model {name!r} cannot be released", problems)
        train = app_dir / str(entry["train"])
        if not train.is_file():
            raise ReleaseError(f"model {name!r}: training data {train} does not exist")
        directory = artifact_dir(models_dir(app_dir), name, train, training_params(entry))
        if not is_complete(directory):
            raise ReleaseError(
                f"model {name!r}: missing artifact {directory} (train it: sluice train {app_dir})"
            )
        models[name] = {"kind": str(kind), "artifact": directory.name}
    return models


def _thresholds(workflow: Workflow) -> dict[str, Any]:
    """Each cascade's tiers and thresholds, by step (``sluice tune`` rewrites them)."""
    thresholds: dict[str, Any] = {}
    for step in workflow.steps:
        cascade = step.options.get("cascade")
        if isinstance(cascade, list):
            thresholds[step.name] = [
                {"model": tier.get("model"), "threshold": tier.get("threshold")}
                for tier in cascade
                if isinstance(tier, Mapping)
            ]
    return thresholds


def _routing(workflow: Workflow) -> dict[str, Any]:
    """The rules file of each ``route`` step (its digest is under ``files``)."""
    return {step.name: step.options.get("rules") for step in workflow.steps if step.uses == "route"}


def build_manifest(app_dir: Path, workflow_name: str) -> dict[str, Any]:
    """The manifest of ``workflow_name`` in the app at ``app_dir``, as its files are now.

    Raises :class:`ReleaseError` naming an unknown workflow or a missing model artifact or
    training file, and :class:`~sluice.errors.ConfigError` for an app that does not load.
    """
    app_dir = Path(app_dir)
    settings = load_settings(app_dir)
    path = find_workflow_file(settings, workflow_name)
    workflow = load_workflow_file(path, settings.pools)
    prompts = load_prompts(app_dir)
    declared = settings.extra.get("models") or {}
    if not isinstance(declared, Mapping):
        raise ConfigError(f"{app_dir / 'sluice.yaml'}: models: must be a mapping")
    version = sluice_version()
    return {
        "format": MANIFEST_FORMAT,
        "sluice": version,
        "workflow": {
            "name": workflow.name,
            "version": workflow.version,
            "file": _relative(path, app_dir) or path.name,
            "digest": _digest(path),
            "text": path.read_text(encoding="utf-8"),
            # The steps in order (the ``steps`` section is keyed by name; JSON keeps no order).
            "steps": [step.name for step in workflow.steps],
        },
        "steps": _steps(workflow, path, app_dir, version),
        "files": _files(workflow, app_dir),
        "prompts": _prompts(workflow, prompts, app_dir),
        "models": _models(_model_names(workflow, prompts, declared), declared, app_dir),
        "thresholds": _thresholds(workflow),
        "routing": _routing(workflow),
    }


def build_release(
    app_dir: Path, workflow_name: str, *, created_at: float, created_by: str = "", note: str = ""
) -> Release:
    """A :class:`Release` of ``workflow_name`` in ``app_dir`` (see :func:`build_manifest`)."""
    manifest = build_manifest(app_dir, workflow_name)
    return Release.of(manifest, created_at=created_at, created_by=created_by, note=note)
