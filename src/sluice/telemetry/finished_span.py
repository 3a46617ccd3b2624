"""A finished span as the sink reads it, and the plain row it is buffered as.

:class:`~sluice.telemetry.tracing.LocalSpan` satisfies this Protocol. The sink takes spans by
it rather than importing the tracer that makes them, which imports the sink: the dependency
runs one way. The sink keeps each span's fields in columns (one list per field) and hands
the OTLP forwarder each span as a :data:`SpanRow`.
"""

from __future__ import annotations

from typing import Any, Protocol

from opentelemetry.trace import SpanContext, SpanKind, StatusCode

#: A finished span's fields, in the order the sink buffers them: (trace id, span id, parent
#: span id or 0, parent is remote, name, kind value, start ns, end ns, status value,
#: attributes). Plain values only (see telemetry/sink.py).
SpanRow = tuple[int, int, int, bool, str, int, int, int, int, dict[str, Any]]


class FinishedSpan(Protocol):
    """Ids, names, times, parent, status and plain attributes of one ended span."""

    @property
    def trace_id(self) -> int:
        """The trace's id."""
        ...

    @property
    def span_id(self) -> int:
        """The span's id."""
        ...

    @property
    def parent_id(self) -> int:
        """The parent's span id, 0 for a root span."""
        ...

    @property
    def parent_remote(self) -> bool:
        """Whether the parent came from another process (a traceparent)."""
        ...

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
