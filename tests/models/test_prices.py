"""Model prices: the config section, its validation, and the cost of a call."""

from __future__ import annotations

import pytest

from sluice.errors import ConfigError
from sluice.models.base import Usage
from sluice.models.prices import Price, PriceTable, validate_prices

CONFIG = {
    "currency": "EUR",
    "gpt-small": {"input_per_1k": 0.00015, "output_per_1k": 0.0006},
    "local-small": {"per_call": 0.000001},
    "free": {"per_call": 0},
}


class TestCost:
    def test_tokens_are_priced_per_thousand(self) -> None:
        """Input and output tokens are priced separately, per 1,000."""
        price = Price(input_per_1k=0.5, output_per_1k=2.0)
        assert price.cost(Usage(input_tokens=2000, output_tokens=500)) == pytest.approx(2.0)

    def test_per_call_price_applies_without_tokens(self) -> None:
        """A per-call price is charged even when the model counts no tokens."""
        assert Price(per_call=0.25).cost(Usage()) == 0.25

    def test_table_prices_a_model_by_name(self) -> None:
        """The table looks the model up by its configured name."""
        table = PriceTable.from_config(CONFIG)
        usage = Usage(input_tokens=1000, output_tokens=1000)
        assert table.cost("gpt-small", usage) == pytest.approx(0.00075)
        assert table.cost("local-small", usage) == pytest.approx(0.000001)
        assert table.cost("free", usage) == 0.0
        assert table.currency == "EUR"
        assert sorted(table) == ["free", "gpt-small", "local-small"]

    def test_unknown_model_is_an_error_not_free(self) -> None:
        """A model without a price raises instead of costing nothing."""
        table = PriceTable.from_config(CONFIG)
        with pytest.raises(ConfigError, match="no price configured for model 'gpt-huge'"):
            table.cost("gpt-huge", Usage(10, 10))

    def test_missing_lists_unpriced_models(self) -> None:
        """missing() names each model without a price, with its config path."""
        table = PriceTable.from_config(CONFIG)
        assert table.missing(["gpt-small", "gpt-huge"]) == [
            "prices.gpt-huge: no price for model 'gpt-huge'"
        ]

    def test_absent_section_is_an_empty_table(self) -> None:
        """No prices section gives an empty table, and validation has nothing to say."""
        assert len(PriceTable.from_config(None)) == 0
        assert validate_prices(None) == []


class TestValidation:
    def test_valid_config_has_no_problems(self) -> None:
        """The documented example validates."""
        assert validate_prices(CONFIG) == []

    def test_every_problem_is_reported_with_its_path(self) -> None:
        """Each bad field is reported once, prefixed with its path."""
        raw = {
            "currency": "",
            "a": {"input_per_1k": -1},
            "b": {"per_call": True},
            "c": {"per_token": 0.1},
            "d": {},
            "e": 0.5,
            "f": {"output_per_1k": float("nan")},
        }
        assert validate_prices(raw) == [
            "prices.currency: must be a non-empty string",
            "prices.a.input_per_1k: must be a non-negative number, got -1",
            "prices.b.per_call: must be a non-negative number, got True",
            "prices.c.per_token: unknown field (expected one of input_per_1k, output_per_1k, "
            "per_call)",
            "prices.d: give at least one of input_per_1k, output_per_1k, per_call "
            "(per_call: 0 for free)",
            "prices.e: must be a mapping with any of input_per_1k, output_per_1k, per_call",
            "prices.f.output_per_1k: must be a non-negative number, got nan",
        ]

    def test_section_must_be_a_mapping(self) -> None:
        """A list where a mapping belongs is reported at the section's path."""
        assert validate_prices([1, 2], path="app.prices") == [
            "app.prices: must be a mapping of model name to price, got list"
        ]

    def test_from_config_raises_all_problems_at_once(self) -> None:
        """from_config raises one ConfigError carrying every problem."""
        with pytest.raises(ConfigError) as caught:
            PriceTable.from_config({"a": {"per_call": -1}, "b": {"x": 1}})
        assert len(caught.value.problems) == 2
