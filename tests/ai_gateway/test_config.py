"""The ``gateway:`` section: a valid one is read, every problem of an invalid one is listed."""

from __future__ import annotations

import pytest

from sluice.ai_gateway.config import parse_gateway
from sluice.ai_gateway.proxy import AiGateway
from sluice.cache.backend import MemoryBackend
from sluice.cache.config import CacheSettings
from sluice.cache.kv_backend import KVBackend
from sluice.errors import ConfigError
from sluice.kv.fallback import FallbackKV
from sluice.kv.memory import MemoryKV
from sluice.kv.redis import RedisKV
from sluice.reliability.slo_guard import SloPolicy

GROUP = {"chat": [{"name": "a", "base_url": "http://h:1/v1/", "model": "m"}]}


def test_a_full_section_is_read() -> None:
    """Groups keep their order; limits, cache and SLO settings are typed."""
    settings = parse_gateway(
        {
            "models": {
                "chat": [
                    {"name": "a", "base_url": "http://h:1/v1/", "model": "m", "api_key_env": "K",
                     "timeout_s": 3, "max_connections": 8, "price_as": "cheap"},
                    {"name": "b", "base_url": "https://h:2/v1", "model": "m"},
                ]
            },
            "limits": {"default": {"requests_per_s": 5}, "tenants": {"x": {"tokens_per_min": 9}}},
            "cache": {"enabled": True, "ttl_s": 30},
            "slo": {"p95_ms": 800, "error_rate": 0.05, "policy": "shed"},
        },
        {"cheap": {"per_call": 0.01}, "b": {"input_per_1k": 0.1}},
        environ={"K": "secret"},
        priced=True,
    )  # fmt: skip
    a, b = settings.groups["chat"]
    assert (a.base_url, a.api_key, a.timeout_s, a.max_connections) == (
        "http://h:1/v1",
        "secret",
        3.0,
        8,
    )
    assert (a.price_as, b.price_as) == ("cheap", "b")
    assert settings.limits_for("y").bucket == 5.0
    assert settings.limits_for("x").tokens_per_min == 9
    assert settings.cache.ttl_s == 30
    assert settings.slo is not None
    assert settings.slo.policy is SloPolicy.SHED


def test_every_problem_is_reported_at_once() -> None:
    """Unknown keys, missing fields, bad numbers, unset secrets, unpriced deployments."""
    with pytest.raises(ConfigError) as caught:
        parse_gateway(
            {
                "models": {
                    "chat": [
                        {"name": "a", "base_url": "ftp://h", "model": "m", "api_key_env": "NOPE"},
                        {"name": "a", "base_url": "http://h", "model": "m", "colour": 1},
                        {"base_url": "http://h", "max_connections": 0},
                    ],
                    "empty": [],
                },
                "limits": {"default": {"requests_per_s": -1}, "tenants": {"t": {"burst": 3}}},
                "cache": {"ttl": 3},
                "slo": {"p95_ms": 100, "error_rate": 0.1, "policy": "panic"},
                "surprise": True,
            },
            environ={},
            priced=True,
        )
    problems = caught.value.problems
    expected = [
        "gateway.models.chat[0].base_url: must start with http:// or https://",
        "gateway.models.chat[0].api_key_env: environment variable NOPE is not set",
        "gateway.models.chat[1].colour: unknown setting",
        "gateway.models.chat[2].name: required (a non-empty string)",
        "gateway.models.chat[2].max_connections: must be a positive integer",
        "gateway.models.empty: must be a non-empty list of deployments",
        "gateway.limits.default.requests_per_s: must be a positive number, got -1",
        "gateway.limits.tenants.t.burst: needs requests_per_s",
        "gateway.cache.ttl: unknown setting",
        "gateway.surprise: unknown setting",
        "prices.a: spend limits need a price for deployment 'a'",
    ]
    for line in expected:
        assert line in problems
    assert any(p.startswith("gateway.slo:") and "panic" in p for p in problems)


def test_a_section_without_models_is_refused() -> None:
    """A gateway with nothing to route to is a configuration error, not an empty gateway."""
    with pytest.raises(ConfigError, match="name at least one model group"):
        parse_gateway({"cache": {"enabled": True}})
    assert parse_gateway({"models": GROUP}).groups["chat"][0].name == "a"


class TestCache:
    def test_the_cache_is_off_and_automatic_by_default(self) -> None:
        """No cache section: off; when on, it goes where the app's KV is shared."""
        cache = parse_gateway({"models": GROUP}, environ={}).cache
        assert cache.enabled is False
        assert (cache.backend, cache.ttl_s, cache.prefix) == ("auto", 300.0, "cache:gateway:")

    def test_the_cache_takes_every_setting_of_the_caches_section(self) -> None:
        """backend, max_mb, prefix and max_value_kb read as in ``caches:``."""
        cache = parse_gateway(
            {
                "models": GROUP,
                "cache": {"enabled": True, "backend": "kv", "ttl_s": 60, "max_mb": 8,
                          "prefix": "gw:", "max_value_kb": 32, "max_entries": 50},
            }
        ).cache  # fmt: skip
        assert cache == CacheSettings(
            max_entries=50, max_mb=8.0, ttl_s=60, backend="kv", prefix="gw:",
            max_value_kb=32.0, enabled=True,
        )  # fmt: skip

    def test_max_bytes_still_reads_with_a_deprecation_warning(self) -> None:
        """The gateway's old ``max_bytes`` becomes ``max_mb``, with a warning naming it."""
        with pytest.warns(DeprecationWarning, match="gateway.cache.max_bytes"):
            cache = parse_gateway(
                {"models": GROUP, "cache": {"enabled": True, "max_bytes": 2 * 1024 * 1024}}
            ).cache
        assert cache.max_mb == 2.0

    def test_cache_problems_have_paths(self) -> None:
        """A bad backend, a bad flag and an endless TTL on the KV are reported together."""
        with pytest.raises(ConfigError) as caught:
            parse_gateway(
                {
                    "models": GROUP,
                    "cache": {"enabled": "yes", "backend": "disk", "max_entries": 0},
                }
            )
        assert "gateway.cache.enabled: must be true or false" in caught.value.problems
        assert "gateway.cache.backend: expected one of memory, kv, auto" in caught.value.problems
        assert "gateway.cache.max_entries: expected a positive number" in caught.value.problems
        with pytest.raises(ConfigError, match="backend kv needs a TTL"):
            parse_gateway({"models": GROUP, "cache": {"backend": "kv", "ttl_s": None}})

    def test_the_environment_overrides_the_backend(self) -> None:
        """SLUICE_CACHE_BACKEND moves the gateway's cache too, as it moves every cache."""
        settings = parse_gateway({"models": GROUP}, environ={"SLUICE_CACHE_BACKEND": "memory"})
        assert settings.cache.backend == "memory"


class TestWhereStateLives:
    async def test_in_process_kv_keeps_cache_and_keys_in_process(self) -> None:
        """On the in-memory KV the cache is an LRU and the keys a private bounded KV."""
        kv = MemoryKV()
        ai = AiGateway(parse_gateway({"models": GROUP, "cache": {"enabled": True}}), kv)
        assert ai.cache is not None
        assert isinstance(ai.cache.backend, MemoryBackend)
        assert ai.keys.kv is not kv
        assert isinstance(ai.keys.kv, MemoryKV)

    async def test_a_shared_kv_holds_cache_and_keys(self) -> None:
        """Behind Redis (a FallbackKV, as ``kv: redis://`` builds) both live on the KV."""
        kv = FallbackKV(RedisKV("redis://127.0.0.1:1/0"))  # never opened: nothing connects
        ai = AiGateway(parse_gateway({"models": GROUP, "cache": {"enabled": True}}), kv)
        assert ai.cache is not None
        assert isinstance(ai.cache.backend, KVBackend)
        assert ai.keys.kv is kv
        await kv.aclose()
