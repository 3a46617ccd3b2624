"""Tracing: one OpenTelemetry trace per event, from the request that made it to delivery.

Each app owns a :class:`Telemetry` with its own tracer (never the global provider, so two
apps in one process, or two tests, stay apart). Spans:

* ingress: the HTTP request (``SERVER``), with the caller's ``traceparent`` as parent; its
  trace id is the request's correlation id, returned in ``x-correlation-id`` and in every
  problem document and log line;
* ``accept``: the gateway writing the event; its context is stored with the event (a W3C
  traceparent on the event and on each job), so a worker in another process, hours later,
  continues the same trace;
* one span per step attempt, with pool, attempt and outcome;
* one span per model call, after the OpenTelemetry GenAI conventions
  (``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
  ``gen_ai.usage.*``) plus its cost (``sluice.cost``);
* one span per cache lookup (``sluice.cache.hit``);
* outbound webhooks (``CLIENT``), which carry ``traceparent`` to the receiver.

Attributes name things and count them; they never carry ticket text, prompts, outputs or
PII, and exceptions are recorded by type only (a message may quote the ticket). Spans go to
the app's store through :class:`~sluice.telemetry.sink.TelemetrySink` (``sluice trace``) and,
when an endpoint is configured, to an OTLP/HTTP collector (:mod:`sluice.telemetry.otlp`).

Code below the step (cascades, caches, egress) reaches the active :class:`Telemetry` through
a context variable set for the step's duration, so models and caches need no tracing wiring.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from sluice.errors import MissingExtraError
from sluice.store.base import CostRecord, TelemetryStore
from sluice.telemetry.settings import TelemetrySettings
from sluice.telemetry.sink import TelemetrySink
from sluice.traceparent import format_traceparent, parse_traceparent

if TYPE_CHECKING:
    # Telemetry reads model calls by their Protocol; models sit above it.
    from sluice.store.base import Job
    from sluice.telemetry.model_call import ModelCall as ModelResult

_ACTIVE: ContextVar[Telemetry | None] = ContextVar("sluice_telemetry", default=None)
Attributes = Mapping[str, str | bool | int | float]
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)
_TRACE_ID_MASK = (1 << 64) - 1
#: Parsed stored traceparents: each of an event's steps continues the same one, so a parse
#: serves them all. Cleared when full (bounded memory, and a miss only costs a parse).
_PARENTS: dict[str, tuple[int, int, bool] | None] = {}
_PARENTS_MAX = 4_096
_NO_SPAN: AbstractContextManager[None] = contextlib.nullcontext()


class LocalSpan(Span):
    """A span as Sluice records it: names, times, parent and plain attributes.

    It implements the OpenTelemetry API's ``Span``, so the API's context, propagation and
    ``get_current_span`` work with it; but it skips the SDK's per-span machinery (attribute
    validation under a lock, span processors, resource and scope objects), which measured at
    tens of microseconds a span, ten times what this costs, on a path that makes ten spans an
    event. Events and exceptions are not recorded (their messages may quote a ticket):
    failures are kept as a status and an ``error.type``.

    Ids are kept as integers; the API's ``SpanContext`` is built only when someone asks for
    it (most spans are never asked), and a finished span leaves as one tuple of plain values
    (:meth:`TelemetrySink.add_span`), so nothing of it waits for the store as an object the
    garbage collector has to visit.
    """

    __slots__ = ("_context", "_sink", "attributes", "end_ns", "kind", "name", "parent_id",
                 "parent_remote", "span_id", "start_ns", "status", "trace_id")  # fmt: skip

    def __init__(
        self, name: str, trace_id: int, span_id: int, parent_id: int, parent_remote: bool,
        kind: SpanKind, attributes: dict[str, Any], sink: TelemetrySink,
    ) -> None:  # fmt: skip
        self.name = name
        self.trace_id = trace_id
        self.span_id = span_id
        #: The parent's span id, 0 for a root; ``parent_remote`` when it came from another
        #: process (a caller's or a stored traceparent).
        self.parent_id = parent_id
        self.parent_remote = parent_remote
        self.kind = kind
        self.attributes = attributes  # owned: callers hand over a dict of their own
        self.status = StatusCode.UNSET
        self.start_ns = time.time_ns()
        self.end_ns = 0
        self._sink = sink
        self._context: SpanContext | None = None

    @property
    def parent(self) -> SpanContext | None:
        """The parent's context, or None for a root span."""
        if not self.parent_id:
            return None
        return SpanContext(self.trace_id, self.parent_id, self.parent_remote, _SAMPLED)

    def get_span_context(self) -> SpanContext:
        """The span's trace id, span id and flags."""
        if self._context is None:
            self._context = SpanContext(self.trace_id, self.span_id, False, _SAMPLED)
        return self._context

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Set several attributes (values are Sluice's own: names, counts, costs)."""
        self.attributes.update(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute."""
        self.attributes[key] = value

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        """Not recorded: span events are where messages (and so ticket text) would go."""

    def add_link(self, context: SpanContext, attributes: Any = None) -> None:
        """Not recorded."""

    def update_name(self, name: str) -> None:
        """Rename the span."""
        self.name = name

    def is_recording(self) -> bool:
        """Always: unsampled spans are never LocalSpans."""
        return True

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Keep the status code; descriptions are dropped (they may quote a ticket)."""
        self.status = status.status_code if isinstance(status, Status) else status

    def record_exception(
        self, exception: BaseException, attributes: Any = None, timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:  # fmt: skip
        """Record the exception's type only."""
        self.attributes["error.type"] = type(exception).__name__

    def end(self, end_time: int | None = None) -> None:
        """Finish the span and hand it to the sink (once)."""
        if self.end_ns == 0:
            self.end_ns = end_time or time.time_ns()
            self._sink.add_span(self)


class LocalTracer:
    """Starts :class:`LocalSpan` children of the current (or a given) span context.

    New traces are sampled by trace id against ``ratio``, as the SDK's ``TraceIdRatioBased``
    does; a span with a parent follows the parent's sampled flag (a caller's ``traceparent``
    decides for its own trace). Unsampled spans are the API's ``NonRecordingSpan``: they
    still carry the trace id, so correlation ids and propagation work, but nothing is kept.
    """

    def __init__(self, sink: TelemetrySink, ratio: float) -> None:
        self._sink = sink
        self._bound = round(ratio * (_TRACE_ID_MASK + 1))
        self._bits = random.Random().getrandbits

    def start_span(
        self, name: str, context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL, attributes: Attributes | None = None,
    ) -> Span:  # fmt: skip
        """A span, child of the span current in ``context`` (or in the running context)."""
        owned = dict(attributes) if attributes else {}
        return self._start(name, trace.get_current_span(context), kind, owned)

    def start_as_current_span(
        self, name: str, context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL, attributes: Attributes | None = None,
    ) -> AbstractContextManager[Span]:  # fmt: skip
        """Start a span, make it current for the block, end it after."""
        owned = dict(attributes) if attributes else {}
        return _SpanScope(self, name, kind, owned, base=context)

    def _start(self, name: str, parent: Span, kind: SpanKind, attributes: dict[str, Any]) -> Span:
        """A child of ``parent`` (any API span; an invalid one starts a new trace)."""
        if isinstance(parent, LocalSpan):  # the common case: no SpanContext needed
            return LocalSpan(name, parent.trace_id, self._bits(64) or 1, parent.span_id,
                             False, kind, attributes, self._sink)  # fmt: skip
        ctx = parent.get_span_context()
        if ctx.is_valid:
            return self._child(name, ctx.trace_id, ctx.span_id, ctx.is_remote,
                               ctx.trace_flags.sampled, kind, attributes)  # fmt: skip
        # The time (ms) in the top 48 bits, 80 random bits below (the 56 that W3C Trace
        # Context level 2 asks to be random, and the 64 that sampling reads, among them):
        # new traces then sort by time, so the span store's trace index grows at its end
        # instead of dirtying pages all over (bench/spans.py: about 0.7x the CPU a write).
        trace_id = (time.time_ns() // 1_000_000 << 80) | self._bits(80)
        sampled = (trace_id & _TRACE_ID_MASK) < self._bound
        return self._child(name, trace_id, 0, False, sampled, kind, attributes)

    def _child(
        self, name: str, trace_id: int, parent_id: int, remote: bool, sampled: bool,
        kind: SpanKind, attributes: dict[str, Any],
    ) -> Span:  # fmt: skip
        """A span in trace ``trace_id`` under ``parent_id`` (0: a root), recorded if sampled."""
        span_id = self._bits(64) or 1
        if not sampled:
            return NonRecordingSpan(SpanContext(trace_id, span_id, False, _UNSAMPLED))
        return LocalSpan(name, trace_id, span_id, parent_id, remote, kind, attributes,
                         self._sink)  # fmt: skip


_KEEP: Final = object()  # a scope that leaves the active telemetry as it is


class _SpanScope:
    """The ``with`` block of one span: started and made current on entry, ended on exit.

    One small object instead of a generator-based context manager per span (and two when
    scopes were nested): the tracing of a ticket opens about ten of them.

    The span starts under the span current in ``base`` (a given context, else the running
    one) and is made current in it, or under ``remote``, a stored traceparent's (trace id,
    span id, sampled); ``activate`` makes a telemetry the
    active one for the block; ``record_errors`` marks the span failed by an exception's type;
    ``outcome`` sets ``sluice.outcome`` when the block ends normally (step spans).
    """

    __slots__ = ("_activate", "_attributes", "_base", "_kind", "_name", "_outcome",
                 "_record_errors", "_remote", "_token", "_tracer", "_was_active",
                 "span")  # fmt: skip

    def __init__(
        self, tracer: LocalTracer, name: str, kind: SpanKind, attributes: dict[str, Any], *,
        base: otel_context.Context | None = None, remote: tuple[int, int, bool] | None = None,
        activate: Any = _KEEP, record_errors: bool = False, outcome: bool = False,
    ) -> None:  # fmt: skip
        self._tracer = tracer
        self._name = name
        self._kind = kind
        self._attributes = attributes
        self._base = base
        self._remote = remote
        self._activate = activate
        self._record_errors = record_errors
        self._outcome = outcome

    def __enter__(self) -> Span:
        if self._activate is not _KEEP:
            self._was_active: Token[Telemetry | None] = _ACTIVE.set(self._activate)
        remote = self._remote
        if remote is not None:
            current = self._tracer._child(self._name, remote[0], remote[1], True, remote[2],
                                          self._kind, self._attributes)  # fmt: skip
        else:
            parent = trace.get_current_span(self._base)
            current = self._tracer._start(self._name, parent, self._kind, self._attributes)
        self._token = otel_context.attach(trace.set_span_in_context(current, self._base))
        self.span = current
        return current

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        current = self.span
        try:
            if exc is not None:
                if self._record_errors:
                    fail(current, exc)
            elif self._outcome and isinstance(current, LocalSpan):
                failed = current.status is StatusCode.ERROR
                current.attributes["sluice.outcome"] = "error" if failed else "ok"
        finally:
            otel_context.detach(self._token)
            current.end()
            if self._activate is not _KEEP:
                _ACTIVE.reset(self._was_active)


class Telemetry:
    """The tracer, the span store and the cost ledger of one app."""

    def __init__(self, settings: TelemetrySettings, store: TelemetryStore) -> None:
        self.settings = settings
        forward = None
        if settings.otlp_endpoint:
            try:  # the OTLP exporter is the ``otlp`` extra
                from sluice.telemetry.otlp import OtlpForwarder
            except ModuleNotFoundError as exc:
                raise MissingExtraError(
                    "telemetry.otlp_endpoint", "otlp", "opentelemetry-exporter-otlp-proto-http"
                ) from exc

            forward = OtlpForwarder(settings.otlp_endpoint, settings.service_name)
        self.sink = TelemetrySink(store, settings, forward)
        self.tracer = LocalTracer(self.sink, settings.sample_ratio)
        self.enabled = settings.tracing

    # lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start writing buffered spans and ledger rows to the store (and the collector)."""
        self.sink.start()

    async def stop(self) -> None:
        """Write what is buffered (call before the store closes)."""
        await self.sink.stop()

    async def flush(self) -> int:
        """Write buffered spans and ledger rows now (tests and the CLI call this)."""
        return await self.sink.flush()

    # spans --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Make this app's tracer the one spans below this point use."""
        token = _ACTIVE.set(self if self.enabled else None)
        try:
            yield
        finally:
            _ACTIVE.reset(token)

    def server_span(
        self, method: str, route: str, traceparent: str | None
    ) -> AbstractContextManager[Span]:
        """The span of one HTTP request, child of the caller's ``traceparent`` if valid."""
        return _SpanScope(
            self.tracer, f"{method} {route}", SpanKind.SERVER,
            {"http.request.method": method, "http.route": route},
            remote=_remote_parent(traceparent) if traceparent else None,
            activate=self if self.enabled else None,
        )  # fmt: skip

    def step_span(self, job: Job, step: str) -> AbstractContextManager[Span]:
        """The span of one step attempt, in the trace stored with the job."""
        attributes = {
            "sluice.event_id": job.event_id, "sluice.workflow": job.workflow,
            "sluice.step": step, "sluice.step.index": job.step, "sluice.pool": job.pool,
            "sluice.attempt": job.attempts, "sluice.tenant": job.tenant,
        }  # fmt: skip
        return _SpanScope(
            self.tracer, f"step {step}", SpanKind.INTERNAL, attributes,
            remote=_remote_parent(job.trace) if job.trace else None,
            activate=self if self.enabled else None, outcome=True,
        )  # fmt: skip

    def span(
        self, name: str, attributes: Attributes | None = None
    ) -> AbstractContextManager[Span | None]:
        """A span of this app, child of the current one (or a new trace's root); None when
        tracing is off."""
        if not self.enabled:
            return _NO_SPAN
        return _SpanScope(
            self.tracer, name, SpanKind.INTERNAL, dict(attributes) if attributes else {},
            activate=self, record_errors=True,
        )  # fmt: skip

    # the cost ledger ------------------------------------------------------------------------
    def record_costs(
        self,
        event_id: str,
        tenant: str,
        workflow: str,
        step: str,
        calls: Sequence[ModelResult],
        template: str | None = None,
    ) -> None:
        """One ledger row per model call (cache hits included, at zero cost); ``template`` is
        the prompt template (``name@version``) the calls rendered, if any."""
        if not self.settings.ledger:
            return
        now = time.time()
        trace_id = current_trace_id()
        for call in calls:
            self.sink.add_cost(
                CostRecord(
                    now, event_id, trace_id, tenant, workflow, step, call.model,
                    call.usage.input_tokens, call.usage.output_tokens, call.cost, call.cached,
                    template,
                )
            )  # fmt: skip


def _remote_parent(traceparent: str) -> tuple[int, int, bool] | None:
    """(trace id, span id, sampled) of a stored or received traceparent; None if invalid."""
    try:
        return _PARENTS[traceparent]
    except KeyError:
        pass
    parsed = parse_traceparent(traceparent)
    found = None if parsed is None else (int(parsed[0], 16), int(parsed[1], 16), parsed[2] & 1 == 1)
    if len(_PARENTS) >= _PARENTS_MAX:
        _PARENTS.clear()
    _PARENTS[traceparent] = found
    return found


def active() -> Telemetry | None:
    """The telemetry of the step or request running now, if tracing is on."""
    return _ACTIVE.get()


def current_traceparent() -> str | None:
    """The traceparent of the current span (for the event, a job or an outbound call)."""
    current = trace.get_current_span()
    if isinstance(current, LocalSpan):  # always sampled; no SpanContext needed
        return f"00-{current.trace_id:032x}-{current.span_id:016x}-01"
    ctx = current.get_span_context()
    if not ctx.is_valid:
        return None
    return format_traceparent(
        format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), ctx.trace_flags.sampled
    )


def current_trace_id() -> str | None:
    """The trace id of the current span (the correlation id), or None outside any trace."""
    current = trace.get_current_span()
    if isinstance(current, LocalSpan):
        return f"{current.trace_id:032x}"
    ctx = current.get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def outbound_headers() -> dict[str, str]:
    """``traceparent`` for an outbound request made in the current span (empty outside)."""
    value = current_traceparent()
    return {} if value is None else {"traceparent": value}


def span(
    name: str, attributes: Attributes | None = None, kind: SpanKind = SpanKind.INTERNAL
) -> AbstractContextManager[Span | None]:
    """A child span of the current one, when tracing is active; else nothing (None)."""
    telemetry = _ACTIVE.get()
    if telemetry is None:
        return _NO_SPAN
    owned = dict(attributes) if attributes else {}
    return _SpanScope(telemetry.tracer, name, kind, owned, record_errors=True)


def fail(current: Span | None, exc: BaseException) -> None:
    """Mark a span failed with the exception's type only (its message may quote a ticket)."""
    if current is not None and current.is_recording():
        current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        current.set_attribute("error.type", type(exc).__name__)
