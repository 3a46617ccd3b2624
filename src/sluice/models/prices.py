"""Model prices and the cost of one call.

Prices come from the ``prices`` section of the app config, one entry per model name (the name
models are registered under, not the provider's model id)::

    prices:
      currency: USD                   # optional, informational; every figure uses it
      gpt-small:   {input_per_1k: 0.00015, output_per_1k: 0.0006}
      local-small: {per_call: 0.000001}
      vllm-8b:     {input_per_1k: 0.00002, output_per_1k: 0.00002, per_call: 0.00001}

Each entry takes any of ``input_per_1k`` and ``output_per_1k`` (price per 1,000 input or output
tokens, read from the provider's ``usage``) and ``per_call`` (a flat price per call, for local
models that do not count tokens, or a provider's request fee). At least one is required; all
must be non-negative numbers. ``per_call: 0`` marks a model as deliberately free.

:func:`validate_prices` returns every problem with its path (``prices.gpt-small.input_per_1k:
must be a non-negative number``); :meth:`PriceTable.from_config` raises them together in one
:class:`~sluice.errors.ConfigError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sluice.errors import ConfigError
from sluice.models.base import Usage

_FIELDS = ("input_per_1k", "output_per_1k", "per_call")
_RESERVED = {"currency"}


@dataclass(frozen=True, slots=True)
class Price:
    """What one model costs: per 1,000 input and output tokens, and per call."""

    input_per_1k: float = 0.0
    output_per_1k: float = 0.0
    per_call: float = 0.0

    def cost(self, usage: Usage) -> float:
        """Cost of one call that consumed ``usage``."""
        return (
            self.per_call
            + usage.input_tokens * self.input_per_1k / 1000.0
            + usage.output_tokens * self.output_per_1k / 1000.0
        )


class PriceTable(Mapping[str, Price]):
    """An immutable mapping of model name to :class:`Price`, with :meth:`cost`."""

    def __init__(self, prices: Mapping[str, Price], currency: str = "USD") -> None:
        self._prices = dict(prices)
        self.currency = currency

    @classmethod
    def from_config(cls, raw: object, path: str = "prices") -> PriceTable:
        """Build a table from the config section; raise every problem in one ConfigError."""
        problems = validate_prices(raw, path)
        if problems:
            raise ConfigError("invalid prices", problems)
        if raw is None:
            return cls({})
        section = cast("Mapping[str, Any]", raw)  # shape checked by validate_prices
        prices = {
            name: Price(**{key: float(value) for key, value in entry.items()})
            for name, entry in section.items()
            if name not in _RESERVED
        }
        return cls(prices, currency=str(section.get("currency", "USD")))

    def __getitem__(self, model: str) -> Price:
        return self._prices[model]

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    def cost(self, model: str, usage: Usage) -> float:
        """Cost of one call to ``model``; a model without a price is a :class:`ConfigError`.

        Unknown models are an error rather than free, so a missing price is found at the first
        call instead of showing up later as a suspiciously cheap month.
        """
        price = self._prices.get(model)
        if price is None:
            raise ConfigError(f"no price configured for model {model!r} (prices.{model})")
        return price.cost(usage)

    def missing(self, models: Iterable[str]) -> list[str]:
        """Problems for each of ``models`` that has no price, with its config path."""
        absent = [name for name in models if name not in self._prices]
        return [f"prices.{name}: no price for model {name!r}" for name in absent]


def validate_prices(raw: object, path: str = "prices") -> list[str]:
    """Every problem in a ``prices`` config section, each prefixed with its path."""
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        return [f"{path}: must be a mapping of model name to price, got {type(raw).__name__}"]
    problems: list[str] = []
    currency = raw.get("currency")
    if currency is not None and not (isinstance(currency, str) and currency):
        problems.append(f"{path}.currency: must be a non-empty string")
    for name, entry in raw.items():
        if name in _RESERVED:
            continue
        where = f"{path}.{name}"
        if not isinstance(name, str) or not name:
            problems.append(f"{where}: model name must be a non-empty string")
            continue
        problems.extend(_entry_problems(entry, where))
    return problems


def _entry_problems(entry: Any, where: str) -> list[str]:
    if not isinstance(entry, Mapping):
        return [f"{where}: must be a mapping with any of {', '.join(_FIELDS)}"]
    if not entry:
        return [f"{where}: give at least one of {', '.join(_FIELDS)} (per_call: 0 for free)"]
    problems: list[str] = []
    for key, value in entry.items():
        if key not in _FIELDS:
            problems.append(f"{where}.{key}: unknown field (expected one of {', '.join(_FIELDS)})")
        elif not _is_price(value):
            problems.append(f"{where}.{key}: must be a non-negative number, got {value!r}")
    return problems


def _is_price(value: object) -> bool:
    # bool is an int subclass; `true` in YAML is a typo, never a price.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value >= 0


def money(amount: float) -> float:
    """``amount`` to 10 significant digits: sums of prices such as 0.000002 carry binary
    noise (``0.00010900000000000002``) that no reader wants to see."""
    return float(f"{amount:.10g}")
