"""A model whose answers, errors and latency follow a script, for testing steps and cascades.

:class:`ScriptedModel` implements the :class:`~sluice.models.base.Model` protocol, so it goes
wherever a real model goes (a cascade tier, a guarded model, ``ctx.service("models")``) and
the code around it runs for real. Each call plays the next entry of the script:

- a string answers with that label (confidence ``confidence``);
- a :class:`~sluice.models.base.ModelResult` is returned as it is;
- an exception is raised (a retryable ``StepError("503")``, a ``TimeoutError``, ...);
- a :class:`Reply` wraps any of these with the time that call takes.

Past the end of the script the last entry repeats. Every request is recorded in
:attr:`ScriptedModel.requests`::

    model = ScriptedModel("large", [StepError("503 from the model"), "card_arrival"])
    result = await guarded(model).predict(ModelRequest(text="where is my card"))
    assert result.label == "card_arrival" and model.calls == 2
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sluice.models.base import ModelRequest, ModelResult

#: What one call gives: a label, a whole result, or an exception to raise.
Outcome = str | ModelResult | BaseException


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted call that takes ``latency_s`` seconds before giving ``outcome``."""

    outcome: Outcome
    latency_s: float = 0.0


class ScriptedModel:
    """A real :class:`~sluice.models.base.Model` that plays ``script``, one entry per call.

    ``latency_s`` is the time of every call whose entry is not a :class:`Reply` (0: the call
    still yields once to the event loop, as a real one would). The time passes through
    ``sleep``, :func:`asyncio.sleep` by default; a :class:`~sluice.testing.ManualClock`'s
    ``sleep`` makes it pass on that clock instead, at once.
    """

    def __init__(
        self,
        name: str,
        script: Sequence[Outcome | Reply],
        *,
        version: str = "1",
        confidence: float = 0.9,
        latency_s: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not script:
            raise ValueError("a scripted model needs at least one entry in its script")
        self.name = name
        self.version = version
        self.script = list(script)
        self.confidence = confidence
        self.latency_s = latency_s
        self._sleep = sleep
        #: Every request received, in order (also those that were answered with an error).
        self.requests: list[ModelRequest] = []

    @property
    def calls(self) -> int:
        """How many calls were made."""
        return len(self.requests)

    async def predict(self, request: ModelRequest) -> ModelResult:
        """Play the next entry of the script."""
        entry = self.script[min(len(self.requests), len(self.script) - 1)]
        self.requests.append(request)
        if isinstance(entry, Reply):
            outcome, latency = entry.outcome, entry.latency_s
        else:
            outcome, latency = entry, self.latency_s
        await self._sleep(latency)
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, ModelResult):
            return outcome
        return ModelResult(
            model=self.name,
            output={"label": outcome},
            label=outcome,
            confidence=self.confidence,
            latency_ms=latency * 1000,
        )
