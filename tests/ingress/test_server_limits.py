"""Server limits from ``ingress: {server: ...}`` and the ``serve`` options."""

from __future__ import annotations

import pytest

from sluice.errors import ConfigError
from sluice.ingress.server import ServerLimits, server_limits


def test_defaults_then_config_then_options() -> None:
    """Absent settings keep the defaults; options override the config; None keeps it."""
    assert server_limits(None) == ServerLimits()
    limits = server_limits(
        {"header_timeout_s": 2.5, "max_connections_per_client": 8192},
        max_connections_per_client=None,
        max_in_flight=50,
    )
    assert limits.header_timeout_s == 2.5
    assert limits.max_connections_per_client == 8192
    assert limits.max_in_flight == 50
    assert limits.body_timeout_s == ServerLimits().body_timeout_s


def test_every_problem_is_reported_at_once() -> None:
    """Unknown keys, non-positive, non-numeric and fractional counts: all named."""
    with pytest.raises(ConfigError) as caught:
        server_limits({"header_timout_s": 1, "max_headers": 0, "body_timeout_s": "30",
                       "max_in_flight": 1.5, "keep_alive_s": True})  # fmt: skip
    problems = caught.value.problems
    assert "ingress.server.header_timout_s: unknown setting" in problems
    assert "ingress.server.max_headers: must be a positive whole number" in problems
    assert "ingress.server.body_timeout_s: must be a positive number" in problems
    assert "ingress.server.max_in_flight: must be a positive whole number" in problems
    assert "ingress.server.keep_alive_s: must be a positive whole number" in problems


def test_the_section_must_be_a_mapping() -> None:
    """``ingress: {server: 5}`` is named, not a crash."""
    with pytest.raises(ConfigError, match=r"ingress\.server: must be a mapping"):
        server_limits(5)  # type: ignore[arg-type]  # what a careless YAML file gives
