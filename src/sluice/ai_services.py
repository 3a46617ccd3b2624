"""The AI services of an app: models (cached), cascades, vector indexes and caches.

:class:`AiServices` is the ``ai`` group of :class:`sluice.services.Services`, filled only when
the app config has a ``models`` or ``indexes`` section (model frameworks are imported by
``start()``, so an app without models never loads one). Models are built (and trained when
their artifacts are missing) and indexes loaded and warmed in ``start()``, before the first
event is claimed, so the first request is as fast as the hundredth.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sluice.cache.config import RESPONSE_CACHE, RETRIEVAL_CACHE, build_caches
from sluice.cache.response import CachedModel, ResponseCache
from sluice.cache.retrieval import RetrievalCache
from sluice.config import AppSettings
from sluice.errors import ConfigError
from sluice.kv.base import KV
from sluice.models.base import Model, ModelRequest
from sluice.models.cascade import Cascade, Tier
from sluice.models.chat_model import ChatModel, ChatModelBuilder
from sluice.models.guarded import GuardedModel
from sluice.models.metered import MeteredModels
from sluice.models.prices import PriceTable
from sluice.outbound.egress import app_policy
from sluice.reliability.breaker import BreakerRegistry
from sluice.reliability.config import ReliabilitySettings
from sluice.reliability.retry_budget import RetryBudget

if TYPE_CHECKING:  # retrieval (and its embedders) loads only when an index is configured
    from sluice.prompts import PromptSet
    from sluice.retrieval.index import VectorIndex
    from sluice.steps.generate import Generation

log = logging.getLogger("sluice.services")


class ModelSet(MeteredModels):
    """The ``models`` service: every configured model by name, each behind the response cache.

    Local kinds are trained or loaded; ``kind: openai`` entries (a provider, a self-hosted
    server or the model simulator) are priced from the ``prices:`` section and share one
    connection pool per endpoint, closed with the app.
    """

    def __init__(self, settings: AppSettings, cache: ResponseCache | None) -> None:
        super().__init__()
        self._settings = settings
        self._cache = cache
        self._remote: ChatModelBuilder | None = None

    async def start(self) -> None:
        """Build the models (training what is missing) and run each once to warm it."""
        from sluice.models.batching import MicroBatcher
        from sluice.models.features import set_encoder_threads
        from sluice.models.local import LocalClassifier
        from sluice.models.registry import build_models

        spec = self._settings.extra.get("models") or {}
        prices = self._settings.extra.get("prices")
        self._remote = ChatModelBuilder(
            prices=None if prices is None else PriceTable.from_config(prices),
            policy=app_policy(self._settings),
        )
        built = await asyncio.to_thread(
            build_models,
            spec,
            self._settings.app_dir,
            builders={"openai": self._remote},
            validators={"openai": self._remote.validate},
            progress=lambda m: log.info("%s", m),
        )
        # Steps run concurrently on shared cores: one encoder thread per call keeps tail
        # latency flat (see set_encoder_threads); batching recovers the throughput.
        set_encoder_threads(1)
        for name, model in built.items():
            served: Model = model
            if isinstance(model, LocalClassifier) and model.slow:
                served = MicroBatcher(model)
            self[name] = served if self._cache is None else CachedModel(served, self._cache)
            if not isinstance(model, ChatModel):  # a remote call would cost money and time
                await served.predict(ModelRequest(text="warm up"))
        log.info("models ready: %s", ", ".join(sorted(self)))

    async def aclose(self) -> None:
        """Close the connection pools of remote models."""
        if self._remote is not None:
            await self._remote.aclose()


class CascadeSet:
    """The ``cascades`` service: one :class:`Cascade` per distinct tier list, built on first use.

    Every tier after the first sits behind a circuit breaker and the retry budget of its model,
    with the first tier as its fallback: while a costly model is failing, the cascade answers
    with the cheap one at once instead of waiting on, or hammering, the failing one
    (``reliability: {guard_tiers: false}`` turns this off, for baselines and drills).
    """

    def __init__(
        self,
        models: Mapping[str, Model],
        breakers: BreakerRegistry,
        budget: RetryBudget,
        *,
        guarded: bool = True,
        max_in_flight: Mapping[str, int] | None = None,
    ) -> None:
        self._models = models
        self._breakers = breakers
        self._budget = budget
        self._guarded_tiers = guarded
        self._max_in_flight = dict(max_in_flight or {})
        self._cascades: dict[tuple[tuple[str, float], ...], Cascade] = {}
        self._guarded: dict[tuple[str, bool], Model] = {}

    def guarded(self, name: str, *, cached: bool = True) -> Model:
        """Model ``name`` behind its breaker (``model:NAME``) and the retry budget, with no
        fallback: the ``generate`` step tries its listed models in order itself. ``cached=False``
        skips the response cache (generation at a temperature above 0)."""
        key = (name, cached)
        model = self._guarded.get(key)
        if model is None:
            if name not in self._models:
                raise ConfigError(f"unknown model {name!r}")
            inner = self._models[name]
            if not cached and isinstance(inner, CachedModel):
                inner = inner.model
            model = inner
            if self._guarded_tiers:
                model = GuardedModel(
                    inner, self._breakers.get(f"model:{name}"), self._budget,
                    max_in_flight=self._max_in_flight.get(name),
                )  # fmt: skip
            self._guarded[key] = model
        return model

    def get(self, tiers: Sequence[Mapping[str, Any]]) -> Cascade:
        """The cascade of ``[{model: NAME, threshold: T}, ..., {model: NAME}]``."""
        key = tuple((str(t.get("model")), float(t.get("threshold", 0.0))) for t in tiers)
        cascade = self._cascades.get(key)
        if cascade is None:
            missing = [name for name, _ in key if name not in self._models]
            if missing:
                raise ConfigError(f"cascade: unknown model(s) {', '.join(missing)}")
            first = self._models[key[0][0]]
            built = [Tier(first, key[0][1])]
            for name, threshold in key[1:]:
                if not self._guarded_tiers:  # reliability.guard_tiers: false, for baselines
                    built.append(Tier(self._models[name], threshold))
                    continue
                guarded = GuardedModel(
                    self._models[name], self._breakers.get(f"model:{name}"), self._budget,
                    fallback=first, max_in_flight=self._max_in_flight.get(name),
                )  # fmt: skip
                built.append(Tier(guarded, threshold))
            cascade = Cascade(built)
            self._cascades[key] = cascade
        return cascade


class IndexSet(dict[str, "VectorIndex"]):
    """The ``indexes`` service: every configured index, loaded and warmed at start."""

    def __init__(self, settings: AppSettings) -> None:
        super().__init__()
        self._settings = settings

    async def start(self) -> None:
        """Load and warm every index (build one with ``sluice index build``)."""
        from sluice.retrieval.config import open_indexes, parse_indexes

        parsed = parse_indexes(self._settings.extra.get("indexes"), self._settings.app_dir)
        self.update(await asyncio.to_thread(open_indexes, parsed))
        log.info("indexes ready: %s", ", ".join(f"{k} ({len(v)})" for k, v in self.items()))


@dataclass(frozen=True, slots=True)
class AiServices:
    """The caches, models, cascades, indexes and prompt templates of an app; None where not
    configured.

    ``models`` and ``indexes`` are mappings by name (a :class:`ModelSet` and an
    :class:`IndexSet` when built from the config; tests may wire plain dicts). ``prompts``
    (the app's ``prompts/`` folder, loaded once) and ``generate`` (the ``generate`` service,
    :class:`~sluice.steps.generate.Generation`) exist only when the app has that folder.
    """

    response_cache: ResponseCache | None = None
    retrieval_cache: RetrievalCache | None = None
    models: Mapping[str, Model] | None = None
    cascades: CascadeSet | None = None
    indexes: Mapping[str, VectorIndex] | None = None
    prompts: PromptSet | None = None
    generate: Generation | None = None


def build_ai_services(
    settings: AppSettings, kv: KV, breakers: BreakerRegistry, reliability: ReliabilitySettings
) -> AiServices:
    """Caches, models, cascades and indexes, as the config asks.

    Tiers after a cascade's first sit behind ``breakers`` and a retry budget, as the app's
    parsed ``reliability`` section says.
    """
    caches = build_caches(settings.extra.get("caches"), kv, env=settings.env)
    response, retrieval = caches.get(RESPONSE_CACHE), caches.get(RETRIEVAL_CACHE)
    response = response if isinstance(response, ResponseCache) else None
    retrieval = retrieval if isinstance(retrieval, RetrievalCache) else None
    models = cascades = indexes = None
    if "models" in settings.extra:
        models = ModelSet(settings, response)
        cascades = CascadeSet(
            models,
            breakers,
            RetryBudget(reliability.retry_budget),
            guarded=reliability.guard_tiers,
            max_in_flight=reliability.max_in_flight,
        )
    if "indexes" in settings.extra:
        indexes = IndexSet(settings)
    return AiServices(response, retrieval, models, cascades, indexes)
