"""``sluice trace EVENT_ID``: the waterfall of an event's trace, from the local span store.

Needs nothing but the app's store: spans are kept there (bounded) whenever tracing is on,
whether or not they are also exported to a collector. A trace id works in place of an event
id (the correlation id an API response or a log line gave you).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sluice.app import SluiceApp
from sluice.cli.common import AppDir, print_json, with_store
from sluice.errors import NotFoundError
from sluice.telemetry import waterfall
from sluice.traceparent import is_trace_id


def register(app: typer.Typer) -> None:
    """Add the ``trace`` command."""
    app.command("trace")(trace)


def _why_none(app: SluiceApp) -> str:
    """Why a trace may have no spans, with the setting that changes it."""
    settings = app.telemetry.settings
    if not settings.tracing:
        return "tracing is off (telemetry: {tracing: true} in sluice.yaml turns it on)"
    if not settings.local_spans:
        return "spans are not stored here (telemetry.local_spans is false; see the collector)"
    reasons = f"spans expire after telemetry.span_ttl_s ({settings.span_ttl_s:g} s)"
    if settings.sample_ratio < 1:
        return (
            f"this trace may not have been sampled: telemetry.sample_ratio is"
            f" {settings.sample_ratio:g} (the default on PostgreSQL is 0.1; set it to 1.0 to"
            f" keep every trace), or {reasons}"
        )
    return f"the event may predate tracing, or {reasons}"


def trace(
    event_id: Annotated[str, typer.Argument(help="An event id, or a trace id.")],
    app_dir: AppDir = Path(),
    as_json: Annotated[bool, typer.Option("--json", help="Print the spans as JSON.")] = False,
) -> None:
    """Print the waterfall of an event's trace: ingress, steps, model calls, cache lookups."""

    async def go(app: SluiceApp) -> None:
        trace_id = await app.store.event_trace_id(event_id)
        if trace_id is None and is_trace_id(event_id.lower()):
            trace_id = event_id.lower()
        if trace_id is None:
            raise NotFoundError(f"no trace for {event_id!r}: not an event id or trace id here")
        spans = await app.store.trace_spans(trace_id)
        if not spans:
            raise NotFoundError(f"no spans stored for trace {trace_id}: {_why_none(app)}")
        if as_json:
            print_json({"trace_id": trace_id, "spans": waterfall.as_json(spans)})
            return
        total = (max(s.end_ns for s in spans) - min(s.start_ns for s in spans)) / 1e6
        typer.echo(f"trace {trace_id}: {len(spans)} spans over {total:.1f} ms")
        for line in waterfall.render(spans):
            typer.echo(line)

    with_store(app_dir, go)
