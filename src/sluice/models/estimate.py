"""What a model call may cost, known before it goes out: the amount a spend budget holds.

A chat model's bound is its price applied to the request's tokens: the input estimated from
the text of the messages it will send (four characters a token, plus a few for the message
framing) and the output at the most the request lets the model write (its ``max_tokens``, or
the model's declared default), since a provider stops there. A local model's bound is its
per-call price. Models that know neither (a custom :class:`~sluice.models.base.Model`) have no
bound: the spend settings then say what to hold (``spend.reserve``, the costliest call seen,
``default_reserve``). The ledger always gets the real usage after the call.

The AI gateway reserves its calls with the same token estimate (:func:`prompt_tokens`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from sluice.models.base import Model, ModelRequest

#: Characters per token of the estimate; the simulator counts usage the same way.
CHARS_PER_TOKEN = 4
#: Tokens a request's framing (roles, separators) adds beyond its text.
FRAMING_TOKENS = 8
# Wrappers (response cache, micro-batcher, breaker guard) keep the model they wrap here; the
# chain is short, the bound only guards against a wrapper that wraps itself.
_MAX_WRAPPERS = 8


def prompt_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """Estimated input tokens of chat ``messages`` (text content, string or parts)."""
    chars = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(str(part.get("text", ""))) for part in content
                         if isinstance(part, dict))  # fmt: skip
    return math.ceil(chars / CHARS_PER_TOKEN) + FRAMING_TOKENS


def cost_bound(model: Model, request: ModelRequest) -> float | None:
    """The most one call of ``model`` on ``request`` can cost, or None when it cannot tell.

    Looks through wrappers (they keep the wrapped model in ``.model``) for a model with a
    ``cost_bound(request)`` method (chat models) or a ``price_per_call`` (local models).
    """
    current: Any = model
    for _ in range(_MAX_WRAPPERS):
        bound = getattr(current, "cost_bound", None)
        if callable(bound):
            value = bound(request)
            return None if value is None else float(value)
        price = getattr(current, "price_per_call", None)
        if isinstance(price, int | float) and not isinstance(price, bool):
            return float(price)
        inner = getattr(current, "model", None)
        if inner is None or inner is current:
            return None
        current = inner
    return None
