"""A finished span as the sink and the OTLP forwarder read it.

:class:`~sluice.telemetry.tracing.LocalSpan` satisfies this Protocol. The sink and the
forwarder take spans by it rather than importing the tracer that makes them, which imports
the sink: the dependency runs one way.
"""

from __future__ import annotations

from typing import Any, Protocol

from opentelemetry.trace import SpanContext, SpanKind, StatusCode


class FinishedSpan(Protocol):
    """Names, times, parent, status and plain attributes of one ended span."""

    @property
    def name(self) -> str:
        """The span's name."""
        ...

    @property
    def parent(self) -> SpanContext | None:
        """The parent's context, None for a root span."""
        ...

    @property
    def kind(self) -> SpanKind:
        """Client, server or internal."""
        ...

    @property
    def attributes(self) -> dict[str, Any]:
        """Sluice's own attributes: names, counts, costs."""
        ...

    @property
    def status(self) -> StatusCode:
        """Unset, ok or error."""
        ...

    @property
    def start_ns(self) -> int:
        """Start, in nanoseconds since the epoch."""
        ...

    @property
    def end_ns(self) -> int:
        """End, in nanoseconds since the epoch."""
        ...

    def get_span_context(self) -> SpanContext:
        """The span's trace id, span id and flags."""
        ...
