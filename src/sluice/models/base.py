"""The one protocol every model speaks: a request in, a structured result with a confidence out.

Local classifiers, OpenAI-compatible chat endpoints and the model simulator all return a
:class:`ModelResult`, so the cascade, caches and cost accounting treat them alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens consumed by one call (zero for models that do not count tokens)."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """What a model is asked.

    ``text`` is the (already masked) input; ``labels`` restricts a classifier's answer;
    ``context`` carries extra material such as retrieved neighbours; ``params`` holds
    generation parameters that are part of the cache key.
    """

    text: str
    labels: Sequence[str] | None = None
    context: Sequence[Mapping[str, Any]] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    #: A generative call (the ``generate`` step): chat messages in OpenAI's shape, sent as
    #: they are instead of a classifier prompt built from ``text``; ``output_schema`` asks for
    #: structured output, ``tools`` declares callable functions (OpenAI's ``tools`` shape) and
    #: ``template`` is the ``name@version`` of the prompt template rendered. All are part of
    #: the cache key.
    messages: Sequence[Mapping[str, Any]] = ()
    output_schema: Mapping[str, Any] | None = None
    tools: Sequence[Mapping[str, Any]] = ()
    template: str | None = None


@dataclass(frozen=True, slots=True)
class ModelResult:
    """A model's structured answer.

    ``output`` is the structured payload (for a classifier ``{"label": ...}``), ``label`` and
    ``confidence`` (0..1, calibrated where the model allows) drive the cascade, ``cost`` is in
    the configured currency.
    """

    model: str
    output: Mapping[str, Any]
    label: str | None
    confidence: float
    usage: Usage = Usage()
    cost: float = 0.0
    latency_ms: float = 0.0
    cached: bool = False  # answered by the response cache: nothing was spent
    #: Why a guarded model answered from its fallback instead (``breaker``, ``bulkhead``).
    fallback: str | None = None


class Model(Protocol):
    """Anything that answers a :class:`ModelRequest` with a :class:`ModelResult`."""

    @property
    def name(self) -> str:
        """Stable model name, used in prices, caches and metrics."""
        ...

    @property
    def version(self) -> str:
        """Version of weights and head; part of every cache key."""
        ...

    async def predict(self, request: ModelRequest) -> ModelResult:
        """Answer one request."""
        ...
