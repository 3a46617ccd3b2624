"""W3C Trace Context ``traceparent`` values: parsed and checked without the tracing SDK.

``00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>``. The store keeps an event's
traceparent as text, and the CLI reads trace ids back from it, so this module has no
dependency beyond the standard library.
"""

from __future__ import annotations

import re

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def parse_traceparent(value: str) -> tuple[str, str, int] | None:
    """(trace id, parent span id, flags) of a valid traceparent, else None.

    Version ``ff`` and all-zero ids are invalid by the specification; later versions are read
    by their first four fields, as the specification asks.
    """
    match = _TRACEPARENT.match(value.strip().lower()[:55])
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, int(flags, 16)


def format_traceparent(trace_id: str, span_id: str, sampled: bool) -> str:
    """A version-00 traceparent."""
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def trace_id_of(value: str) -> str | None:
    """The trace id in a traceparent, or None if it is not one."""
    parsed = parse_traceparent(value)
    return None if parsed is None else parsed[0]


def is_trace_id(value: str) -> bool:
    """Whether ``value`` is a trace id as printed (32 lower-case hex digits)."""
    return bool(_TRACE_ID.match(value)) and value != "0" * 32
