"""The app's services: one frozen, typed object built once, reached by name from steps."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import pytest

from sluice.ai_gateway.proxy import AiGateway
from sluice.app import SluiceApp
from sluice.cache.backend import MemoryBackend
from sluice.cache.response import ResponseCache
from sluice.cache.stats import CacheStats
from sluice.config import load_settings
from sluice.errors import StepError
from sluice.services import _AFTER_CUSTOM, _BEFORE_CUSTOM, _HOME, Services
from sluice.workflow.context import StepContext
from tests.conftest import MakeApp

WORKFLOW = """
name: hello
steps: [{name: keep, pool: cpu, uses: noop}]
"""
GREETING = """
name: hello
steps: [{name: greet, pool: cpu, uses: "services_test_steps:greet"}]
"""
STEPS = """
async def greet(ctx, data):
    return {**data, "greeting": ctx.service("greeter").greet(data["name"])}
"""
CONFIG = """
store: sqlite:///.sluice/app.db
pools: {cpu: {concurrency: 1}}
reliability: {breaker: {failure_threshold: 2, open_s: 30}}
spend:
  limits: {"tenant:acme": {amount: 1.0, window: hour}}
"""
GATEWAY = """
prices:
  primary: {input_per_1k: 1.0, output_per_1k: 2.0}
gateway:
  models:
    chat:
      - {name: primary, base_url: "http://127.0.0.1:9/v1", model: sim-a, timeout_s: 5}
  cache: {enabled: true, ttl_s: 60}
"""


class Greeter:
    """A custom service that records its lifecycle."""

    def __init__(self, log: list[str], name: str = "greeter") -> None:
        self.log = log
        self.name = name

    def greet(self, name: str) -> str:
        """The greeting."""
        return f"hello {name}"

    async def start(self) -> None:
        """Record the start."""
        self.log.append(f"start {self.name}")

    async def aclose(self) -> None:
        """Record the close."""
        self.log.append(f"close {self.name}")


class Counting:
    """A custom service whose stats() counts something else than a cache's hits."""

    def stats(self) -> dict[str, int]:
        """Not cache stats."""
        return {"calls": 1}


def _context(services: Any) -> StepContext:
    return StepContext(
        "e1", "hello", "1", "acme", "greet", 1, {}, time.time() + 5, logging.getLogger("t"),
        services,
    )  # fmt: skip


class TestBuilt:
    def test_frozen_and_read_only(self, make_app: MakeApp) -> None:
        """Nothing is added after build: the groups are frozen and the name view has no
        setter."""
        app = SluiceApp.from_settings(load_settings(make_app(CONFIG, {"hello.yaml": WORKFLOW})))
        services = app.services
        with pytest.raises(dataclasses.FrozenInstanceError):
            services.core.alerts = None  # type: ignore[misc]  # the point of the test
        with pytest.raises(TypeError):
            services["ai_gateway"] = object()  # type: ignore[index]  # the point of the test
        assert list(services) == [
            "kv", "files", "egress", "breakers", "metrics", "telemetry", "spend", "escalation",
            "secrets", "templates", "routing",
        ]  # fmt: skip
        assert services["kv"] is app.kv
        assert services["metrics"] is app.metrics
        assert services.reliability.spend is services["spend"]

    def test_reliability_section_parsed_once_for_every_user(self, make_app: MakeApp) -> None:
        """The cascade tiers, the AI gateway and /v1/status share one breaker registry, made
        with the app's ``reliability.breaker`` settings."""
        app_dir = make_app(CONFIG + GATEWAY, {"hello.yaml": WORKFLOW})
        services = SluiceApp.from_settings(load_settings(app_dir)).services
        breakers = services.core.breakers
        assert breakers is not None
        assert breakers.settings.failure_threshold == 2
        ai = services.gateway.ai_gateway
        assert isinstance(ai, AiGateway)
        assert ai.breakers is breakers
        assert ai.budgets is services.reliability.spend
        assert services["ai_gateway"] is ai
        assert services["gateway_cache"] is ai.cache
        assert list(services.caches()) == ["gateway_cache"]

    def test_no_gateway_without_its_section(self, make_app: MakeApp) -> None:
        """An app without ``gateway:`` has no AI gateway and no gateway cache."""
        app_dir = make_app(CONFIG, {"hello.yaml": WORKFLOW})
        services = SluiceApp.from_settings(load_settings(app_dir)).services
        assert services.gateway.ai_gateway is None
        assert "ai_gateway" not in services
        assert "gateway_cache" not in services


class TestCustom:
    async def test_custom_service_reaches_steps_and_lives_with_the_app(
        self, make_app: MakeApp
    ) -> None:
        """A service passed to from_settings is a custom service: steps reach it by name, and
        it starts after the built-in ones and closes before them."""
        app_dir = make_app(CONFIG, {"hello.yaml": GREETING}, {"services_test_steps.py": STEPS})
        log: list[str] = []
        first, second = Greeter(log), Greeter(log, "second")
        app = SluiceApp.from_settings(
            load_settings(app_dir), services={"greeter": first, "second": second}
        )
        assert dict(app.services.custom) == {"greeter": first, "second": second}
        async with app:
            event_id = await app.runtime.submit("hello", {"name": "Ada"})
            record = await app.runtime.wait(event_id, timeout=10)
        assert record.result is not None
        assert b"hello Ada" in record.result
        assert log == ["start greeter", "start second", "close second", "close greeter"]

    def test_a_built_in_name_replaces_that_service(self, make_app: MakeApp) -> None:
        """Tests wire their own index or cache under the built-in name: it lands in its
        group, not among the custom services."""
        app_dir = make_app(CONFIG, {"hello.yaml": WORKFLOW})
        cache = ResponseCache(MemoryBackend(10))
        indexes: dict[str, Any] = {}
        app = SluiceApp.from_settings(
            load_settings(app_dir), services={"indexes": indexes, "response_cache": cache}
        )
        services = app.services
        assert services.ai.indexes is indexes
        assert services["indexes"] is indexes
        assert services.ai.response_cache is cache
        assert dict(services.custom) == {}
        assert services.caches() == {"response_cache": cache}

    def test_custom_services_cannot_shadow_built_in_ones(self) -> None:
        """Built directly, a custom service under a built-in name is refused."""
        with pytest.raises(ValueError, match="kv"):
            Services(custom={"kv": object()})


class TestNames:
    def test_every_built_in_name_has_its_place_in_the_lifecycle(self) -> None:
        """A field added to a group is reached by name and started with the others."""
        assert sorted(_BEFORE_CUSTOM + _AFTER_CUSTOM) == sorted(_HOME)

    def test_custom_services_are_copied(self) -> None:
        """The object stays as built when the caller's mapping changes later."""
        given: dict[str, Any] = {"greeter": Greeter([])}
        services = Services(custom=given)
        given["late"] = object()
        assert list(services.custom) == ["greeter"]
        assert "late" not in services


class TestCaches:
    def test_custom_caches_report_by_protocol(self) -> None:
        """A custom service with ``stats() -> CacheStats`` is a cache; one whose stats count
        something else is not."""
        cache = ResponseCache(MemoryBackend(10))
        services = Services.of({"mine": cache, "counting": Counting()})
        assert services.caches() == {"mine": cache}
        assert isinstance(services.caches()["mine"].stats(), CacheStats)


class TestStepView:
    def test_a_plain_mapping_still_makes_a_context(self) -> None:
        """A unit test wires a plain dict; ctx.service finds what is there and explains what
        is not."""
        greeter = Greeter([])
        ctx = _context({"greeter": greeter})
        assert ctx.service("greeter") is greeter
        with pytest.raises(StepError, match="needs service 'egress'"):
            ctx.service("egress")

    def test_the_typed_object_is_the_mapping_steps_see(self) -> None:
        """Services.of wires parts by name; steps see only what is wired."""
        greeter = Greeter([])
        services = Services.of({"greeter": greeter, "spend": None})
        ctx = _context(services)
        assert ctx.services is services
        assert ctx.service("greeter") is greeter
        assert "spend" not in services
        assert services.get("spend") is None
        with pytest.raises(StepError, match="needs service 'spend'"):
            ctx.service("spend")
