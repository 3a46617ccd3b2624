"""Spans of the calls steps make: one model call (OpenTelemetry GenAI semantic conventions)
and one cache lookup, with what each records of its outcome (never the output itself)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from opentelemetry.trace import Span, SpanKind

from sluice.telemetry.model_call import ModelCall
from sluice.telemetry.tracing import active, span


def model_identity(model: Any) -> tuple[str, str]:
    """(``gen_ai.operation.name``, ``gen_ai.provider.name``) of a model, looking through the
    wrappers (cache, breaker, batcher) to the model itself."""
    seen = 0
    while seen < 8:
        provider = getattr(model, "provider", None)
        if isinstance(provider, str) and provider:
            return "chat", provider
        inner = getattr(model, "model", None) or getattr(model, "inner", None)
        if inner is None or isinstance(inner, str):
            break
        model = inner
        seen += 1
    return "classification", "sluice.local"


def model_span(model: Any) -> AbstractContextManager[Span | None]:
    """The span of one model call (GenAI semantic conventions)."""
    if active() is None:  # no tracing: skip finding the model's identity
        return span("", None)
    operation, provider = model_identity(model)
    name = str(model.name)
    attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": name,
    }
    return span(f"{operation} {name}", attributes, SpanKind.CLIENT)


def record_model_result(current: Span | None, result: ModelCall) -> None:
    """Usage, cost and the answering model on a model-call span (never the output itself)."""
    if current is None or not current.is_recording():
        return
    current.set_attributes({
        "gen_ai.response.model": result.model,
        "gen_ai.usage.input_tokens": result.usage.input_tokens,
        "gen_ai.usage.output_tokens": result.usage.output_tokens,
        "sluice.cost": result.cost,
        "sluice.cache.hit": result.cached,
    })  # fmt: skip


def cache_span(cache: str) -> AbstractContextManager[Span | None]:
    """The span of one cache lookup; set the outcome with :func:`record_hit`."""
    return span(f"cache.lookup {cache}", {"sluice.cache.name": cache})


def record_hit(current: Span | None, hit: bool) -> None:
    """A cache lookup's outcome."""
    if current is not None and current.is_recording():
        current.set_attribute("sluice.cache.hit", hit)
