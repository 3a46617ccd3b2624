"""What telemetry reads of a model call: the model, its tokens, its cost, whether it was cached.

Telemetry sits below the models (they trace through it), so it takes a call's figures by
this Protocol; :class:`sluice.models.base.ModelResult` satisfies it.
"""

from __future__ import annotations

from typing import Protocol


class TokenCounts(Protocol):
    """Tokens one call consumed."""

    @property
    def input_tokens(self) -> int:
        """Prompt tokens."""
        ...

    @property
    def output_tokens(self) -> int:
        """Answer tokens."""
        ...


class ModelCall(Protocol):
    """One model call as the cost ledger, the spans and the spike alerts see it."""

    @property
    def model(self) -> str:
        """The model that answered."""
        ...

    @property
    def usage(self) -> TokenCounts:
        """Its token counts."""
        ...

    @property
    def cost(self) -> float:
        """What it cost, in the configured currency (zero for a cache hit)."""
        ...

    @property
    def cached(self) -> bool:
        """Whether the response cache answered it (nothing was spent)."""
        ...
