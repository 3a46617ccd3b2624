"""sluice.yaml's sections: every one known, a misspelled one refused with a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.cli.config_check import SECTION_CHECKS
from sluice.config import SECTIONS, load_settings, parse_settings
from sluice.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("app", ["hello", "triage", "gateway"])
def test_each_example_app_loads(app: str) -> None:
    """The example apps use only known sections and keys."""
    settings = load_settings(EXAMPLES / app, environ={})
    assert set(settings.extra) <= set(SECTIONS)


@pytest.mark.parametrize(
    ("section", "suggestion"),
    [("rate_limit", "rate_limits"), ("spnd", "spend"), ("cache", "caches")],
)
def test_a_misspelled_section_names_the_right_one(section: str, suggestion: str) -> None:
    """A misspelled top-level section is an error that names the file and suggests the
    section meant, instead of leaving the feature quietly off."""
    with pytest.raises(ConfigError) as info:
        parse_settings({section: {}}, Path(), environ={})
    assert info.value.problems == [
        f"sluice.yaml: {section}: unknown section (did you mean {suggestion}?)"
    ]


def test_a_section_with_nothing_close_gets_no_suggestion() -> None:
    """An unknown section far from every known one is refused without a guess."""
    with pytest.raises(ConfigError) as info:
        parse_settings({"zzzzzz": 1}, Path(), environ={})
    assert info.value.problems == ["sluice.yaml: zzzzzz: unknown section"]


def test_a_misspelled_key_suggests_the_setting() -> None:
    """Keys of the sections parsed at load get the same suggestion."""
    with pytest.raises(ConfigError) as info:
        parse_settings(
            {"runtime": {"lease_sm": 10}, "pools": {"cpu": {"concurency": 2}}},
            Path(),
            environ={},
        )
    assert info.value.problems == [
        "sluice.yaml: pools.cpu.concurency: unknown setting (did you mean concurrency?)",
        "sluice.yaml: runtime.lease_sm: unknown setting (did you mean lease_ms?)",
    ]


def test_every_section_has_its_check() -> None:
    """The list of sections and the parsers ``sluice config check`` runs stay the same set."""
    assert list(SECTION_CHECKS) == list(SECTIONS)
