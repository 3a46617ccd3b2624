"""The waterfall of one trace, as text: each span indented under its parent, with its offset
from the trace's start, its duration, a bar placing it in time, and its telling attributes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sluice.store.base import SpanRecord

BAR = 32
# Attributes worth a glance in the waterfall, with the short name they are printed under.
_SHOWN = (
    ("http.response.status_code", "status"),
    ("sluice.pool", "pool"),
    ("sluice.attempt", "attempt"),
    ("sluice.outcome", "outcome"),
    ("gen_ai.provider.name", "provider"),
    ("gen_ai.usage.input_tokens", "in"),
    ("gen_ai.usage.output_tokens", "out"),
    ("sluice.cost", "cost"),
    ("sluice.cache.hit", "hit"),
    ("error.type", "error"),
)


def ordered(spans: Sequence[SpanRecord]) -> list[tuple[int, SpanRecord]]:
    """Spans depth first (children by start time) with their depth; orphans are roots."""
    ids = {s.span_id for s in spans}
    children: defaultdict[str | None, list[SpanRecord]] = defaultdict(list)
    for s in spans:
        children[s.parent_id if s.parent_id in ids else None].append(s)
    out: list[tuple[int, SpanRecord]] = []
    stack = [(0, s) for s in sorted(children[None], key=lambda s: s.start_ns, reverse=True)]
    while stack:
        depth, span = stack.pop()
        out.append((depth, span))
        below = sorted(children.get(span.span_id, ()), key=lambda s: s.start_ns, reverse=True)
        stack.extend((depth + 1, child) for child in below)
    return out


def _details(attributes: Any) -> str:
    parts = []
    for key, short in _SHOWN:
        if key in attributes:
            value = attributes[key]
            parts.append(f"{short}={value:g}" if isinstance(value, float) else f"{short}={value}")
    return " ".join(parts)


def render(spans: Sequence[SpanRecord]) -> list[str]:
    """The waterfall lines of ``spans`` (one trace)."""
    if not spans:
        return []
    start = min(s.start_ns for s in spans)
    total = max(max(s.end_ns for s in spans) - start, 1)
    lines = []
    for depth, span in ordered(spans):
        offset = span.start_ns - start
        length = max(span.end_ns - span.start_ns, 0)
        left = min(BAR - 1, offset * BAR // total)
        width = max(1, min(BAR - left, round(length * BAR / total)))
        bar = " " * left + "#" * width + " " * (BAR - left - width)
        mark = " !" if span.status == "error" else ""
        lines.append(
            f"{offset / 1e6:9.1f} ms {length / 1e6:9.1f} ms |{bar}| {'  ' * depth}{span.name}{mark}"
            f"  {_details(span.attributes)}".rstrip()
        )
    return lines


def as_json(spans: Sequence[SpanRecord]) -> list[dict[str, Any]]:
    """The spans in waterfall order as JSON-ready objects (times in ms from the start)."""
    if not spans:
        return []
    start = min(s.start_ns for s in spans)
    return [
        {"depth": depth, "name": s.name, "span_id": s.span_id, "parent_id": s.parent_id,
         "kind": s.kind, "status": s.status, "offset_ms": round((s.start_ns - start) / 1e6, 3),
         "duration_ms": round((s.end_ns - s.start_ns) / 1e6, 3), "event_id": s.event_id,
         "attributes": dict(s.attributes)}
        for depth, s in ordered(spans)
    ]  # fmt: skip
