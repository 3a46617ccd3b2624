"""The ``gateway:`` section: a valid one is read, every problem of an invalid one is listed."""

from __future__ import annotations

import pytest

from sluice.ai_gateway.config import parse_gateway
from sluice.errors import ConfigError
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
