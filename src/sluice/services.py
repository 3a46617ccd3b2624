"""The services of an app: one frozen, typed object, built once from its config.

:func:`build_services` is the one place that turns ``AppSettings`` into services; each config
section is parsed there once, and nothing is added after it returns. The object is grouped:

- ``core``: ``kv``, ``files`` (app files parsed once), ``egress`` (outbound allowlist and
  client), ``breakers``, ``metrics``, ``telemetry``, ``alerts`` (with an ``alerts:`` section);
- ``ai`` (:class:`~sluice.ai_services.AiServices`): caches, ``models``, ``cascades``,
  ``indexes``, with a ``models:`` or ``indexes:`` section;
- ``reliability`` (:class:`~sluice.reliability.services.ReliabilityServices`): ``slo_guards``,
  ``spend``, ``escalation``;
- ``gateway``: the AI gateway (``ai_gateway``, ``gateway_cache``), with a ``gateway:`` section;
- ``governance``: managed configuration kept in the store: ``secrets``
  (:mod:`sluice.governance.secrets`), ``templates`` (stored prompt template versions) and
  ``routing`` (which models a tenant, workflow or API key may use), when the app is built on
  a store;
- ``custom``: services the embedding code passes to ``SluiceApp.from_settings(services=...)``.

Steps see the same object as a read-only mapping by service name (``ctx.services``,
``ctx.service(name)``): every name is a field of one group, or a custom service. Services that
have ``async start()`` are started (warmed up) before the first event is claimed, those with
``async aclose()`` closed in the reverse order when the app stops; the order is the one
services were added in before they were typed: ``kv``, ``files``, ``egress``, ``breakers``,
the ``ai`` group, ``metrics``, ``telemetry``, the ``reliability`` group, custom services,
``alerts`` (it posts through ``egress``), then the AI gateway (it freezes what start-up
allocated, so it starts last).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from prometheus_client.core import Metric

from sluice.ai_services import AiServices
from sluice.cache.stats import CacheStats, ReportsStats
from sluice.config import AppSettings
from sluice.governance.routing import Routing, model_providers
from sluice.governance.secrets import Secrets
from sluice.governance.templates import ManagedTemplates
from sluice.guard.crypto import AesGcmCodec
from sluice.kv.base import KV
from sluice.outbound.egress import Egress
from sluice.reliability.breaker import BreakerRegistry
from sluice.reliability.config import parse_reliability
from sluice.reliability.services import ReliabilityServices, build_reliability_services
from sluice.steps.files import AppFiles
from sluice.store.managed import ManagedStore
from sluice.telemetry.alerts import Alerts, AlertSettings
from sluice.telemetry.metrics import Metrics, reliability_gauges
from sluice.telemetry.tracing import Telemetry
from sluice.workflow.model import Workflow


@runtime_checkable
class Starts(Protocol):
    """A service warmed up before the first event is claimed."""

    async def start(self) -> None:
        """Open pools, load models, fill caches: whatever makes the first call fast."""


@runtime_checkable
class Closes(Protocol):
    """A service holding resources (connections, tasks) released when the app stops."""

    async def aclose(self) -> None:
        """Release them."""


@dataclass(frozen=True, slots=True)
class CoreServices:
    """What every app has (``alerts`` only with an ``alerts:`` section).

    Fields are optional so that a step's unit test can wire only what the step uses
    (:meth:`Services.of`); an app built by :func:`build_services` has all but ``alerts``.
    """

    kv: KV | None = None
    files: AppFiles | None = None
    egress: Egress | None = None
    #: One breaker per downstream: model:NAME (cascade tiers), webhook:HOST (deliver),
    #: gateway:DEPLOYMENT (the AI gateway), cache:NAME (KV-backed caches).
    breakers: BreakerRegistry | None = None
    metrics: Metrics | None = None
    telemetry: Telemetry | None = None
    alerts: Alerts | None = None


class AiGatewayService(Starts, Closes, Protocol):
    """What the app holds of the AI gateway (:class:`sluice.ai_gateway.proxy.AiGateway`): a
    service opened and closed with the others; its routes take it as it is."""


@dataclass(frozen=True, slots=True)
class GatewayServices:
    """The OpenAI-compatible AI gateway and its response cache, with a ``gateway:`` section
    (built by :func:`sluice.ai_gateway.wiring.build_gateway_services`)."""

    ai_gateway: AiGatewayService | None = None
    gateway_cache: ReportsStats | None = None


@dataclass(frozen=True, slots=True)
class GovernanceServices:
    """Managed configuration read from the app's store (wired when it is built on one)."""

    secrets: Secrets | None = None
    templates: ManagedTemplates | None = None
    routing: Routing | None = None


_GROUPS: dict[str, type[Any]] = {
    "core": CoreServices,
    "ai": AiServices,
    "reliability": ReliabilityServices,
    "gateway": GatewayServices,
    "governance": GovernanceServices,
}
#: The group each built-in service name lives in.
_HOME = {f.name: group for group, kind in _GROUPS.items() for f in fields(kind)}
#: Lifecycle order: later services use earlier ones (alerts post through egress, the AI
#: gateway freezes what start-up allocated), so they start after and stop before them.
#: Custom services come between ``escalation`` and ``alerts``.
_BEFORE_CUSTOM = (
    "kv", "files", "egress", "breakers", "response_cache", "retrieval_cache", "models",
    "cascades", "indexes", "prompts", "generate", "metrics", "telemetry", "slo_guards",
    "spend", "escalation", "secrets", "templates", "routing",
)  # fmt: skip
_AFTER_CUSTOM = ("alerts", "ai_gateway", "gateway_cache")
#: Built-in services that report cache stats (custom ones do when they are ReportsStats).
_CACHES = ("response_cache", "retrieval_cache", "gateway_cache")


@dataclass(frozen=True, slots=True, eq=False)
class Services(Mapping[str, Any]):
    """The services of one app, by group; also a read-only mapping by service name.

    Use the groups in code that knows what it needs (``services.reliability.spend``); the
    mapping (``services["models"]``, ``services.get("alerts")``) is what steps see as
    ``ctx.services`` and lists only the services that are wired.
    """

    core: CoreServices = field(default_factory=CoreServices)
    ai: AiServices = field(default_factory=AiServices)
    reliability: ReliabilityServices = field(default_factory=ReliabilityServices)
    gateway: GatewayServices = field(default_factory=GatewayServices)
    governance: GovernanceServices = field(default_factory=GovernanceServices)
    custom: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    _by_name: Mapping[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = sorted(name for name in self.custom if name in _HOME)
        if unknown:
            raise ValueError(f"custom services shadow built-in ones: {', '.join(unknown)}")
        object.__setattr__(self, "custom", MappingProxyType(dict(self.custom)))  # a copy
        by_name: dict[str, Any] = {}
        for name in _BEFORE_CUSTOM:
            by_name[name] = getattr(getattr(self, _HOME[name]), name)
        by_name.update(self.custom)
        for name in _AFTER_CUSTOM:
            by_name[name] = getattr(getattr(self, _HOME[name]), name)
        wired = {k: v for k, v in by_name.items() if v is not None or k in self.custom}
        object.__setattr__(self, "_by_name", MappingProxyType(wired))

    @classmethod
    def of(cls, parts: Mapping[str, Any]) -> Services:
        """Services holding just ``parts`` by name (a step's unit test wires what it uses)."""
        return cls().with_parts(parts)

    def with_parts(self, parts: Mapping[str, Any]) -> Services:
        """A copy with ``parts`` wired by name: built-in names replace that service in its
        group (a test's own index or cache), other names are added as custom services."""
        groups: dict[str, dict[str, Any]] = {}
        custom = dict(self.custom)
        for name, value in parts.items():
            if name in _HOME:
                groups.setdefault(_HOME[name], {})[name] = value
            else:
                custom[name] = value
        changed = {group: replace(getattr(self, group), **v) for group, v in groups.items()}
        return replace(self, **changed, custom=custom)

    # the read-only mapping ---------------------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str, default: Any = None) -> Any:
        """The service named ``name``, else ``default`` (a dict lookup: the accept path asks)."""
        return self._by_name.get(name, default)

    # what the app reads ------------------------------------------------------------------------
    def caches(self) -> dict[str, ReportsStats]:
        """Every cache by service name: the built-in caches, and custom services that report
        cache stats (:class:`~sluice.cache.stats.ReportsStats`), for /metrics and /v1/status."""
        found: dict[str, ReportsStats] = {
            name: cache for name in _CACHES if (cache := self._by_name.get(name)) is not None
        }
        for name, service in self.custom.items():
            # A custom stats() may count something else than a cache's hits: only CacheStats.
            if isinstance(service, ReportsStats) and isinstance(service.stats(), CacheStats):
                found[name] = service
        return found

    # lifecycle ---------------------------------------------------------------------------------
    def _owned(self) -> list[Any]:
        # The KV is the app's: it opens it before the services start and closes it after.
        return [service for name, service in self._by_name.items() if name != "kv"]

    async def start(self) -> None:
        """Start (warm up) every service that can be, in order."""
        for service in self._owned():
            if isinstance(service, Starts) and inspect.iscoroutinefunction(service.start):
                await service.start()

    async def aclose(self) -> None:
        """Close every service that holds resources, the last started first."""
        for service in reversed(self._owned()):
            if isinstance(service, Closes) and inspect.iscoroutinefunction(service.aclose):
                await service.aclose()


def build_services(
    settings: AppSettings,
    workflows: Iterable[Workflow],
    *,
    kv: KV,
    metrics: Metrics,
    telemetry: Telemetry,
    custom: Mapping[str, Any] | None = None,
    store: ManagedStore | None = None,
    codec: AesGcmCodec | None = None,
) -> Services:
    """The services of ``settings`` for ``workflows``, built once.

    ``custom`` services are wired by name: a built-in name replaces that service (tests pass
    their own index or cache), any other is added as a custom service. ``store`` (with the
    at-rest ``codec`` when encryption is configured) adds the ``governance`` group.
    """
    extra = settings.extra
    custom = dict(custom or {})
    reliability = parse_reliability(extra.get("reliability"))
    breakers = BreakerRegistry(reliability.breaker)
    egress = Egress.from_settings(settings)
    metrics.configure(extra.get("metrics"))
    ai = AiServices()
    if "models" in extra or "indexes" in extra:
        from sluice.ai_services import build_ai_services

        ai = build_ai_services(settings, kv, breakers, reliability)
    workflows = list(workflows)
    ai = _with_prompts(settings, workflows, ai)
    # Checked where cascades are built from the file: not when a test brings its own, nor
    # for an app started without models (the contract harness's way in; `sluice config
    # check` still reports a classify step with no models section).
    if "models" in extra and "cascades" not in custom:
        from sluice.steps.classify_checks import check_classify_steps
        from sluice.steps.generate_checks import workflow_files

        check_classify_steps(
            workflows,
            extra.get("models"),
            files=workflow_files(settings.workflows_dir, settings.app_dir),
        )
    guards = build_reliability_services(settings, workflows, kv)
    alerts = None
    if extra.get("alerts") is not None and "alerts" not in custom:
        alerts = Alerts(AlertSettings.from_config(extra["alerts"], egress.allow), egress, metrics)
    core = CoreServices(
        kv, AppFiles(settings.app_dir), egress, breakers, metrics, telemetry, alerts
    )
    governance = GovernanceServices()
    if store is not None:
        governance = GovernanceServices(
            Secrets(store, codec),
            ManagedTemplates(store),
            Routing(store, model_providers(extra.get("models"))),
        )
    gateway = GatewayServices()
    if extra.get("gateway") is not None:
        gateway = _gateway_services(settings, kv, breakers, guards, metrics, governance.routing)
    services = Services(core, ai, guards, gateway, governance).with_parts(custom)
    metrics.watch(lambda: _reliability_gauges(services))
    return services


def _with_prompts(settings: AppSettings, workflows: list[Workflow], ai: AiServices) -> AiServices:
    """The app's prompt templates and the ``generate`` service, when it has a ``prompts/``
    folder (a load problem fails the app load with its file and path); every ``generate``
    step's options are checked against them."""
    from sluice.prompts import PROMPTS_DIR, load_prompts
    from sluice.steps.generate import Generation
    from sluice.steps.generate_checks import check_generate_steps, workflow_files

    search = settings.workflows_dir
    groups = settings.model_groups
    uses_generate = any(step.uses == "generate" for wf in workflows for step in wf.steps)
    if (settings.app_dir / PROMPTS_DIR).is_dir() or uses_generate:
        # Without the folder, generate steps render stored versions (name@version) only.
        prompts = load_prompts(settings.app_dir)
        ai = replace(ai, prompts=prompts, generate=Generation(prompts, search, groups))
    if uses_generate:
        models = list(settings.extra.get("models") or {})
        files = workflow_files(search, settings.app_dir)
        check_generate_steps(workflows, ai.prompts, models, groups=groups, files=files,
                             search_path=search, app_dir=settings.app_dir)  # fmt: skip
    return ai


def _reliability_gauges(services: Services) -> Iterator[Metric]:
    breakers = services.core.breakers
    guards = services.reliability.slo_guards
    return reliability_gauges(
        [(s.name, s.state) for s in ([] if breakers is None else breakers.snapshot())],
        [(s.workflow, s.state) for s in ([] if guards is None else guards.snapshot())],
    )


#: The AI gateway's builder, named rather than imported: its package sits above the services
#: in the layers (its routes mount on the app), so it is imported only by apps that declare one.
_GATEWAY_BUILDER = "sluice.ai_gateway.wiring:build_gateway_services"


def _gateway_services(
    settings: AppSettings,
    kv: KV,
    breakers: BreakerRegistry,
    reliability: ReliabilityServices,
    metrics: Metrics,
    routing: Routing | None = None,
) -> GatewayServices:
    """The AI gateway of the ``gateway:`` section; its pools open and close with the app."""
    module, _, name = _GATEWAY_BUILDER.partition(":")
    build: Callable[..., GatewayServices] = getattr(importlib.import_module(module), name)
    return build(settings, kv, breakers, reliability.spend, metrics, routing)
