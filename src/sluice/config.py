"""Typed, immutable settings.

The app config is ``APP_DIR/sluice.yaml``; the environment is read once, here, through an
injectable mapping (``SLUICE_STORE`` overrides ``store``, ``SLUICE_KV`` overrides ``kv``).
Everything downstream receives these objects and never reads files or the environment itself.

Example::

    store: sqlite:///.sluice/sluice.db      # relative paths are relative to APP_DIR
    kv: memory://                           # or redis://HOST:PORT/DB to share state
    workflows: workflows                    # directory of workflow YAML files
    pools:
      retrieval: {concurrency: 8, queue_limit: 5000}
      inference: {concurrency: 4, queue_limit: 5000}
    runtime:
      lease_ms: 30000        # a claimed job returns to the queue if its owner stops beating
      heartbeat_ms: 1000
      poll_ms: 50            # how often idle workers look for work written by other processes
      synchronous: full      # SQLite durability: full (survives power loss) or normal
    model_groups:            # named, ordered lists of models of the models: section
      drafter: [llm, backup] # `model: drafter` in a generate step: llm first, backup next

The sections this module does not parse itself (``models``, ``prices``, ...) are kept in
``extra`` for the subsystems that own them; :data:`SECTIONS` lists every section there is, so a
misspelled one (``spnd:``) is an error at load with a suggestion instead of a feature quietly
off. ``sluice config check`` runs each section's own parser as well.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from sluice.errors import ConfigError

CONFIG_FILE = "sluice.yaml"
DEFAULT_STORE = "sqlite:///.sluice/sluice.db"
DEFAULT_KV = "memory://"
# The sections parsed here; every other known section is kept in ``AppSettings.extra``.
_OWN_SECTIONS = frozenset({"store", "kv", "workflows", "pools", "runtime", "model_groups"})
# Every top-level section of sluice.yaml and what it configures: the one list of them (the
# command ``sluice config check`` holds the parser of each, and a test keeps the two equal).
SECTIONS: Mapping[str, str] = {
    "store": "the event store URL (sqlite:/// or postgresql://)",
    "kv": "the key-value store URL (memory:// or redis://)",
    "workflows": "the directory of workflow files",
    "pools": "worker pools: concurrency and queue limit",
    "runtime": "dispatcher and store timing",
    "models": "models by name: local classifiers, remote endpoints, simulators",
    "model_groups": "named, ordered lists of models (fallbacks across providers)",
    "prices": "price of each model or deployment",
    "spend": "spend budgets per tenant and workflow",
    "reliability": "breakers, retry budget, tier guards",
    "indexes": "retrieval indexes",
    "caches": "response and retrieval caches",
    "rate_limits": "rate limits per tenant and workflow",
    "sources": "webhook sources: secrets and mappings",
    "ingress": "request limits and the HTTP server's limits",
    "egress": "hosts outbound calls may reach (older name of outbound.allow)",
    "outbound": "the egress policy: allowed hosts and private networks, proxy, bounds",
    "metrics": "Prometheus label bounds",
    "alerts": "spike alerts",
    "encryption": "payload encryption keys",
    "telemetry": "tracing and span storage",
    "gateway": "the OpenAI-compatible AI gateway",
}


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """A named worker pool: at most ``concurrency`` steps at once, ``queue_limit`` waiting."""

    name: str
    concurrency: int = 4
    queue_limit: int = 10_000


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """Timing knobs of the dispatcher and the store."""

    lease_ms: int = 30_000
    heartbeat_ms: int = 1_000
    poll_ms: int = 50
    synchronous: str = "full"
    max_batch: int = 512


@dataclass(frozen=True, slots=True)
class AppSettings:
    """Everything needed to build one Sluice app."""

    app_dir: Path
    store: str = DEFAULT_STORE
    kv: str = DEFAULT_KV
    workflows_dir: Path | None = None
    pools: Mapping[str, PoolSettings] = field(default_factory=dict)
    runtime: RuntimeSettings = RuntimeSettings()
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Group name -> its models in the order they are tried (``model_groups:``).
    model_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # The SLUICE_* environment variables as read at load: secrets and keys come from here.
    env: Mapping[str, str] = field(default_factory=dict)

    def sqlite_path(self) -> Path:
        """The SQLite database file named by ``store`` (relative paths resolve in app_dir)."""
        prefix = "sqlite:///"
        if not self.store.startswith(prefix):
            raise ConfigError(f"store: {self.store!r} is not a sqlite:/// URL")
        path = Path(self.store[len(prefix) :])
        return path if path.is_absolute() else self.app_dir / path


def _int_field(raw: Mapping[str, Any], key: str, where: str, problems: list[str]) -> None:
    value = raw.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        problems.append(f"{where}.{key}: must be a positive integer, got {value!r}")


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest of ``known`` to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def unknown_problems(
    raw: Iterable[object], known: Iterable[str], where: str, what: str
) -> list[str]:
    """One problem per key of ``raw`` not in ``known``: ``WHERE.KEY: unknown WHAT (did you
    mean ...?)`` (``where`` empty for the top level)."""
    names = list(known)
    return [
        f"{where}{key}: unknown {what}{did_you_mean(str(key), names)}"
        for key in raw
        if key not in names
    ]


def parse_model_groups(raw: Any, models: Any, problems: list[str]) -> dict[str, tuple[str, ...]]:
    """The ``model_groups:`` section: group name -> the models it tries, in order.

    A group is an ordered list of names of the ``models:`` section (fallbacks, possibly across
    providers); an empty list is a group with no model (a path switched off, e.g. an LLM not
    configured here). A member that is not a model, a repeated member, or a group named like a
    model is a problem appended to ``problems`` with its path.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append("model_groups: must be a mapping of group name to a list of models")
        return {}
    known = [str(name) for name in models] if isinstance(models, Mapping) else []
    groups: dict[str, tuple[str, ...]] = {}
    for name, members in raw.items():
        where = f"model_groups.{name}"
        if str(name) in known:
            problems.append(f"{where}: a model of the models: section has this name already")
            continue
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            problems.append(f"{where}: must be a list of model names, tried in order")
            continue
        for index, member in enumerate(members):
            if member not in known:
                problems.append(
                    f"{where}[{index}]: {member!r} is not a model of the models: section"
                    f"{did_you_mean(member, known)} (models: {', '.join(known) or 'none'})"
                )
            elif members.index(member) != index:
                problems.append(f"{where}[{index}]: {member!r} is listed twice")
        groups[str(name)] = tuple(members)
    return groups


def parse_settings(
    raw: Mapping[str, Any], app_dir: Path, environ: Mapping[str, str] | None = None
) -> AppSettings:
    """Validate a parsed config mapping and build :class:`AppSettings`.

    Every problem is collected before raising, so one error lists them all.
    """
    env = os.environ if environ is None else environ
    problems = unknown_problems(raw, SECTIONS, "", "section")
    pools: dict[str, PoolSettings] = {}
    raw_pools = raw.get("pools") or {}
    if not isinstance(raw_pools, Mapping):
        problems.append("pools: must be a mapping of pool name to settings")
        raw_pools = {}
    for name, given in raw_pools.items():
        spec = given or {}
        if not isinstance(spec, Mapping):
            problems.append(f"pools.{name}: must be a mapping")
            continue
        problems += unknown_problems(
            spec, ("concurrency", "queue_limit"), f"pools.{name}.", "setting"
        )
        _int_field(spec, "concurrency", f"pools.{name}", problems)
        _int_field(spec, "queue_limit", f"pools.{name}", problems)
        pools[str(name)] = PoolSettings(
            name=str(name),
            concurrency=int(spec.get("concurrency", 4)),
            queue_limit=int(spec.get("queue_limit", 10_000)),
        )
    raw_runtime = raw.get("runtime") or {}
    runtime = RuntimeSettings()
    if not isinstance(raw_runtime, Mapping):
        problems.append("runtime: must be a mapping")
    else:
        known = set(RuntimeSettings.__dataclass_fields__)
        problems += unknown_problems(raw_runtime, sorted(known), "runtime.", "setting")
        for key in ("lease_ms", "heartbeat_ms", "poll_ms", "max_batch"):
            _int_field(raw_runtime, key, "runtime", problems)
        sync = raw_runtime.get("synchronous", "full")
        if sync not in ("full", "normal"):
            problems.append(f"runtime.synchronous: must be 'full' or 'normal', got {sync!r}")
        if not problems:
            runtime = RuntimeSettings(**{k: raw_runtime[k] for k in raw_runtime if k in known})
    store = env.get("SLUICE_STORE") or raw.get("store") or DEFAULT_STORE
    if not isinstance(store, str):
        problems.append("store: must be a URL string")
    kv = env.get("SLUICE_KV") or raw.get("kv") or DEFAULT_KV
    if not isinstance(kv, str):
        problems.append("kv: must be a URL string (memory:// or redis://HOST:PORT/DB)")
    workflows = raw.get("workflows", "workflows")
    if not isinstance(workflows, str):
        problems.append("workflows: must be a directory path")
        workflows = "workflows"
    groups = parse_model_groups(raw.get("model_groups"), raw.get("models"), problems)
    if problems:
        raise ConfigError(
            f"invalid app config in {app_dir / CONFIG_FILE}",
            [f"{CONFIG_FILE}: {problem}" for problem in problems],
        )
    wf_dir = Path(workflows)
    return AppSettings(
        app_dir=app_dir,
        store=str(store),
        kv=str(kv),
        workflows_dir=wf_dir if wf_dir.is_absolute() else app_dir / wf_dir,
        pools=pools,
        runtime=runtime,
        extra={k: v for k, v in raw.items() if k not in _OWN_SECTIONS},
        model_groups=groups,
        env={k: v for k, v in env.items() if k.startswith("SLUICE_")},
    )


def load_settings(app_dir: Path, environ: Mapping[str, str] | None = None) -> AppSettings:
    """Read ``APP_DIR/sluice.yaml`` (optional) and the environment into settings."""
    app_dir = app_dir.resolve()
    if not app_dir.is_dir():
        raise ConfigError(f"app directory {app_dir} does not exist")
    path = app_dir / CONFIG_FILE
    raw: Any = {}
    if path.exists():
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: the top level must be a mapping")
    return parse_settings(raw, app_dir, environ)


def own_addresses(settings: AppSettings) -> list[str]:
    """The hosts (and ``host:port``) of the app's own configuration: the store, the KV, and
    every ``base_url`` of its sections (model endpoints, gateway upstreams). Logs show them
    unmasked: they are the operator's, not payload data."""
    urls = [settings.store, settings.kv]

    def collect(node: object) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key == "base_url" and isinstance(value, str):
                    urls.append(value)
                else:
                    collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(settings.extra)
    found: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname:
            found.append(parts.hostname)
            if parts.port:
                found.append(f"{parts.hostname}:{parts.port}")
    return found
