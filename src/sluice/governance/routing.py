"""Model routing as managed config: which models and providers a tenant or a workflow may use,
and which gateway models each API key may ask for.

The rules are one document, versioned in the store (``sluice routing set``; each change is a
new version and an audit entry), read by every process and enforced at call time::

    tenants:
      acme: {models: [small, llm], providers: [api.openai.com, local]}
      "*": {models: [small]}             # every tenant not listed by name
    workflows:
      triage: {providers: [local]}       # its steps call local models only
    keys:
      k_3f9a: {models: [chat]}           # the AI gateway models this API key may ask for

A call passes when every rule that applies to it allows it: the tenant's (or ``"*"``), the
workflow's (or ``"*"``) for a step, and the API key's on the AI gateway. A rule without
``models`` allows any model, one without ``providers`` any provider; no document at all
allows everything the app's config declares. A model's provider is the host of its
``base_url`` (``kind: openai`` models and gateway deployments), ``local`` for local models.

A refusal names the rule: ``routing v3: tenants.acme.models does not allow model 'llm'
(allowed: small)``; a step fails with it (not retried: the rule will not change by itself) and
the AI gateway answers 403.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from sluice.errors import ConfigError, StepError
from sluice.store.managed import ManagedStore, RoutingRecord

SCOPES = ("tenants", "workflows", "keys")
_RULE_KEYS = {"tenants": ("models", "providers"), "workflows": ("models", "providers"),
              "keys": ("models",)}  # fmt: skip
#: The rule for everything a scope does not name.
ANY = "*"
#: How long a process uses the rules it read before reading them again.
REFRESH_S = 2.0
#: Decisions a process remembers under the rules in force (by tenant, workflow, model, key).
DECISIONS = 10_000
#: Entries of one list at most (a document is small; an unbounded one would be a mistake).
MAX_ENTRIES = 1000
LOCAL = "local"


class ModelNotAllowedError(StepError):
    """A call the routing rules refuse; ``rule`` is the path of the refusing rule."""

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message, retryable=False)
        self.rule = rule


@dataclass(frozen=True, slots=True)
class Rule:
    """What one entry allows (None: anything)."""

    models: frozenset[str] | None = None
    providers: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class RoutingRules:
    """A parsed, checked routing document."""

    version: int = 0
    tenants: Mapping[str, Rule] = field(default_factory=dict)
    workflows: Mapping[str, Rule] = field(default_factory=dict)
    keys: Mapping[str, Rule] = field(default_factory=dict)

    def _refusal(
        self, scope: str, name: str, model: str, provider: str | None
    ) -> tuple[str, str] | None:
        """(the refusing rule's path, the message), or None when the scope allows the call."""
        table: Mapping[str, Rule] = getattr(self, scope)
        key = name if name in table else ANY if scope != "keys" and ANY in table else None
        if key is None:
            return None
        rule = table[key]
        where = f"{scope}.{key}"
        if rule.models is not None and model not in rule.models:
            allowed = ", ".join(sorted(rule.models)) or "none"
            return f"{where}.models", (f"routing v{self.version}: {where}.models does not"
                                       f" allow model {model!r} (allowed: {allowed})")  # fmt: skip
        if provider is not None and rule.providers is not None and provider not in rule.providers:
            allowed = ", ".join(sorted(rule.providers)) or "none"
            return f"{where}.providers", (
                f"routing v{self.version}: {where}.providers does not allow provider"
                f" {provider!r} of model {model!r} (allowed: {allowed})"
            )
        return None

    def refusal(
        self,
        model: str,
        *,
        tenant: str,
        provider: str | None = None,
        workflow: str | None = None,
        key: str | None = None,
    ) -> tuple[str, str] | None:
        """(the path of the first rule that refuses the call, the message), or None."""
        refused = self._refusal("tenants", tenant, model, provider)
        if refused is None and workflow is not None:
            refused = self._refusal("workflows", workflow, model, provider)
        if refused is None and key is not None:
            refused = self._refusal("keys", key, model, provider)
        return refused

    def check(
        self,
        model: str,
        *,
        tenant: str,
        provider: str | None = None,
        workflow: str | None = None,
        key: str | None = None,
    ) -> None:
        """Raise :class:`ModelNotAllowedError` naming the first rule that refuses the call."""
        refused = self.refusal(model, tenant=tenant, provider=provider, workflow=workflow,
                               key=key)  # fmt: skip
        if refused is not None:
            raise ModelNotAllowedError(refused[1], refused[0])


def _strings(value: Any, where: str, problems: list[str]) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append(f"{where}: must be a list of names")
        return None
    if len(value) > MAX_ENTRIES:
        problems.append(f"{where}: at most {MAX_ENTRIES} names, got {len(value)}")
    return frozenset(value)


def parse_rules(raw: Any, version: int = 0) -> RoutingRules:
    """Check a routing document; one ConfigError lists every problem with its path."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError("routing: the document must be a mapping of tenants, workflows, keys")
    problems = [
        f"routing.{key}: unknown section (known: {', '.join(SCOPES)})"
        for key in raw
        if key not in SCOPES
    ]
    tables: dict[str, dict[str, Rule]] = {}
    for scope in SCOPES:
        entries = raw.get(scope) or {}
        tables[scope] = {}
        if not isinstance(entries, Mapping):
            problems.append(f"routing.{scope}: must be a mapping of name to rule")
            continue
        if len(entries) > MAX_ENTRIES:
            problems.append(f"routing.{scope}: at most {MAX_ENTRIES} entries")
        for name, spec in entries.items():
            where = f"routing.{scope}.{name}"
            if not isinstance(spec, Mapping):
                problems.append(f"{where}: must be a mapping ({', '.join(_RULE_KEYS[scope])})")
                continue
            problems += [
                f"{where}.{key}: unknown key (known: {', '.join(_RULE_KEYS[scope])})"
                for key in spec
                if key not in _RULE_KEYS[scope]
            ]
            tables[scope][str(name)] = Rule(
                _strings(spec.get("models"), f"{where}.models", problems),
                _strings(spec.get("providers"), f"{where}.providers", problems),
            )
    if problems:
        raise ConfigError("invalid routing rules", problems)
    return RoutingRules(version, tables["tenants"], tables["workflows"], tables["keys"])


def provider_of(base_url: str | None) -> str:
    """The provider of a model: the host of its endpoint, ``local`` without one."""
    if not base_url:
        return LOCAL
    return urlsplit(base_url).hostname or LOCAL


def model_providers(models_section: Mapping[str, Any] | None) -> dict[str, str]:
    """Model name -> provider for a ``models:`` section."""
    out: dict[str, str] = {}
    for name, entry in (models_section or {}).items():
        url = entry.get("base_url") if isinstance(entry, Mapping) else None
        out[str(name)] = provider_of(url if isinstance(url, str) else None)
    return out


def document_of(record: RoutingRecord | None) -> dict[str, Any]:
    """The stored document as a dict (empty when no rules were ever set)."""
    return {} if record is None else dict(orjson.loads(record.document))


class Routing:
    """The ``routing`` service: the current rules, read from the store at most every
    ``refresh_s``, and their changes."""

    def __init__(
        self,
        store: ManagedStore,
        providers: Mapping[str, str] | None = None,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._store = store
        self._providers = dict(providers or {})
        self._refresh = refresh_s
        self._rules = RoutingRules()
        self._read_at = -float("inf")
        self._lock = asyncio.Lock()
        # Decisions under the rules in force, by call shape: a dictionary lookup a call.
        self._decided: dict[tuple[Any, ...], Any] = {}

    async def rules(self) -> RoutingRules:
        """The rules in force (one store read every ``refresh_s`` at most)."""
        if time.monotonic() - self._read_at < self._refresh:
            return self._rules
        async with self._lock:
            if time.monotonic() - self._read_at >= self._refresh:
                record = await self._store.get_routing()
                version = 0 if record is None else record.version
                if version != self._rules.version:
                    self._rules = parse_rules(document_of(record), version)
                    self._decided = {}
                self._read_at = time.monotonic()
        return self._rules

    async def check_step_model(self, model: str, *, tenant: str, workflow: str) -> None:
        """Raise :class:`ModelNotAllowedError` when a step of ``workflow`` run for ``tenant``
        may not call ``model``."""
        rules = await self.rules()
        if not rules.version:
            return
        key = (model, tenant, workflow)
        try:
            refused = self._decided[key]
        except KeyError:
            provider = self._providers.get(model)
            found = rules.refusal(model, tenant=tenant, workflow=workflow, provider=provider)
            refused = self._decide(key, found)
        if refused is not None:
            raise ModelNotAllowedError(refused[1], refused[0])

    async def gateway_targets(
        self, model: str, targets: Sequence[tuple[str, str]], *, tenant: str, key: str
    ) -> list[str] | None:
        """The deployments of gateway model ``model`` this call may use, given as
        (deployment, provider) pairs; None when no rule applies. Raises
        :class:`ModelNotAllowedError` when the rules leave none."""
        rules = await self.rules()
        if not rules.version:
            return None
        cache_key = ("gateway", model, tenant, key, tuple(targets))
        decided = self._decided.get(cache_key)
        if decided is None:
            refused = rules.refusal(model, tenant=tenant, key=key)
            allowed: list[str] = []
            if refused is None:
                for name, provider in targets:
                    why = rules.refusal(model, tenant=tenant, key=key, provider=provider)
                    if why is None:
                        allowed.append(name)
                    elif refused is None:
                        refused = why
            decided = self._decide(cache_key, (refused, tuple(allowed)))
        refused, names = decided
        if not names and refused is not None:
            raise ModelNotAllowedError(refused[1], refused[0])
        return list(names)

    def _decide(self, key: tuple[Any, ...], decision: Any) -> Any:
        """Remember a decision for the rules in force (bounded: cleared when full)."""
        if len(self._decided) >= DECISIONS:
            self._decided.clear()
        self._decided[key] = decision
        return decision

    async def current(self) -> RoutingRecord | None:
        """The latest stored version (None when never set)."""
        return await self._store.get_routing()

    async def set(self, document: Mapping[str, Any], actor: str) -> int:
        """Check and store ``document`` as the next version; return its number."""
        parse_rules(document)
        text = orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode()
        version = await self._store.put_routing(text, time.time(), actor)
        self._read_at = -float("inf")
        return version


def unknown_names(
    rules: RoutingRules, models: Iterable[str], workflows: Iterable[str]
) -> list[str]:
    """Warnings for rules naming models or workflows the app does not declare (a typo
    would refuse every call)."""
    known_models, known_workflows = set(models), set(workflows)
    out = [
        f"routing.workflows.{name}: no workflow {name!r} in this app"
        for name in rules.workflows
        if name != ANY and known_workflows and name not in known_workflows
    ]
    for scope in ("tenants", "workflows"):
        table: Mapping[str, Rule] = getattr(rules, scope)
        for name, rule in table.items():
            out += [
                f"routing.{scope}.{name}.models: no model {model!r} in this app"
                for model in sorted(rule.models or ())
                if known_models and model not in known_models
            ]
    return out
