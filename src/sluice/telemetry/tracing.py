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
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

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


class LocalSpan(Span):
    """A span as Sluice records it: names, times, parent and plain attributes.

    It implements the OpenTelemetry API's ``Span``, so the API's context, propagation and
    ``get_current_span`` work with it; but it skips the SDK's per-span machinery (attribute
    validation under a lock, span processors, resource and scope objects), which measured at
    tens of microseconds a span, ten times what this costs, on a path that makes ten spans an
    event. Events and exceptions are not recorded (their messages may quote a ticket):
    failures are kept as a status and an ``error.type``.
    """

    __slots__ = ("_context", "_sink", "attributes", "end_ns", "kind", "name", "parent",
                 "start_ns", "status")  # fmt: skip

    def __init__(
        self, name: str, context: SpanContext, parent: SpanContext | None, kind: SpanKind,
        attributes: Attributes | None, sink: TelemetrySink,
    ) -> None:  # fmt: skip
        self.name = name
        self._context = context
        self.parent = parent
        self.kind = kind
        self.attributes: dict[str, Any] = dict(attributes) if attributes else {}
        self.status = StatusCode.UNSET
        self.start_ns = time.time_ns()
        self.end_ns = 0
        self._sink = sink

    def get_span_context(self) -> SpanContext:
        """The span's trace id, span id and flags."""
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
        self._random = random.Random()

    def start_span(
        self, name: str, context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL, attributes: Attributes | None = None,
    ) -> Span:  # fmt: skip
        """A span, child of the span current in ``context`` (or in the running context)."""
        current = trace.get_current_span(context).get_span_context()
        bits = self._random.getrandbits
        parent: SpanContext | None = None
        if current.is_valid:
            parent = current
            trace_id, sampled = current.trace_id, current.trace_flags.sampled
        else:
            # The time (ms) in the top 48 bits, 80 random bits below (the 56 that W3C Trace
            # Context level 2 asks to be random, and the 64 that sampling reads, among them):
            # new traces then sort by time, so the span store's trace index grows at its end
            # instead of dirtying pages all over (bench/spans.py: about 0.7x the CPU a write).
            trace_id = (time.time_ns() // 1_000_000 << 80) | bits(80)
            sampled = (trace_id & _TRACE_ID_MASK) < self._bound
        ctx = SpanContext(trace_id, bits(64) or 1, False, _SAMPLED if sampled else _UNSAMPLED)
        if not sampled:
            return NonRecordingSpan(ctx)
        return LocalSpan(name, ctx, parent, kind, attributes, self._sink)

    @contextlib.contextmanager
    def start_as_current_span(
        self, name: str, context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL, attributes: Attributes | None = None,
    ) -> Iterator[Span]:  # fmt: skip
        """Start a span, make it current for the block, end it after."""
        current = self.start_span(name, context, kind, attributes)
        token = otel_context.attach(trace.set_span_in_context(current, context))
        try:
            yield current
        finally:
            otel_context.detach(token)
            current.end()


class Telemetry:
    """The tracer, the span store and the cost ledger of one app."""

    def __init__(self, settings: TelemetrySettings, store: TelemetryStore) -> None:
        self.settings = settings
        forward = None
        if settings.otlp_endpoint:
            from sluice.telemetry.otlp import OtlpForwarder

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

    @contextlib.contextmanager
    def server_span(self, method: str, route: str, traceparent: str | None) -> Iterator[Span]:
        """The span of one HTTP request, child of the caller's ``traceparent`` if valid."""
        parent = _remote_parent(traceparent) if traceparent else None
        with (
            self.activate(),
            self.tracer.start_as_current_span(
                f"{method} {route}", context=parent, kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "http.route": route},
            ) as span,
        ):  # fmt: skip
            yield span

    @contextlib.contextmanager
    def step_span(self, job: Job, step: str) -> Iterator[Span]:
        """The span of one step attempt, in the trace stored with the job."""
        parent = _remote_parent(job.trace) if job.trace else None
        attributes: Attributes = {
            "sluice.event_id": job.event_id, "sluice.workflow": job.workflow,
            "sluice.step": step, "sluice.step.index": job.step, "sluice.pool": job.pool,
            "sluice.attempt": job.attempts, "sluice.tenant": job.tenant,
        }  # fmt: skip
        with (
            self.activate(),
            self.tracer.start_as_current_span(
                f"step {step}", context=parent, attributes=attributes
            ) as span,
        ):  # fmt: skip
            yield span
            failed = isinstance(span, LocalSpan) and span.status is StatusCode.ERROR
            span.set_attribute("sluice.outcome", "error" if failed else "ok")

    @contextlib.contextmanager
    def span(self, name: str, attributes: Attributes | None = None) -> Iterator[Span | None]:
        """A span of this app, child of the current one (or a new trace's root); None when
        tracing is off."""
        if not self.enabled:
            yield None
            return
        with self.activate(), span(name, attributes) as current:
            yield current

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


def _remote_parent(traceparent: str) -> otel_context.Context | None:
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return None
    trace_id, span_id, flags = parsed
    ctx = SpanContext(
        int(trace_id, 16), int(span_id, 16), is_remote=True,
        trace_flags=TraceFlags(flags & 0x01),
    )  # fmt: skip
    return trace.set_span_in_context(NonRecordingSpan(ctx))


def active() -> Telemetry | None:
    """The telemetry of the step or request running now, if tracing is on."""
    return _ACTIVE.get()


def current_traceparent() -> str | None:
    """The traceparent of the current span (for the event, a job or an outbound call)."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format_traceparent(
        format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"), ctx.trace_flags.sampled
    )


def current_trace_id() -> str | None:
    """The trace id of the current span (the correlation id), or None outside any trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def outbound_headers() -> dict[str, str]:
    """``traceparent`` for an outbound request made in the current span (empty outside)."""
    value = current_traceparent()
    return {} if value is None else {"traceparent": value}


@contextlib.contextmanager
def span(
    name: str, attributes: Attributes | None = None, kind: SpanKind = SpanKind.INTERNAL
) -> Iterator[Span | None]:
    """A child span of the current one, when tracing is active; else nothing (None)."""
    telemetry = _ACTIVE.get()
    if telemetry is None:
        yield None
        return
    with telemetry.tracer.start_as_current_span(name, kind=kind, attributes=attributes) as current:
        try:
            yield current
        except BaseException as exc:
            fail(current, exc)
            raise


def fail(current: Span | None, exc: BaseException) -> None:
    """Mark a span failed with the exception's type only (its message may quote a ticket)."""
    if current is not None and current.is_recording():
        current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        current.set_attribute("error.type", type(exc).__name__)


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


@contextlib.contextmanager
def model_span(model: Any) -> Iterator[Span | None]:
    """The span of one model call (GenAI semantic conventions)."""
    if _ACTIVE.get() is None:
        yield None
        return
    operation, provider = model_identity(model)
    attributes: Attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": str(model.name),
    }
    with span(f"{operation} {model.name}", attributes, SpanKind.CLIENT) as current:
        yield current


def record_model_result(current: Span | None, result: ModelResult) -> None:
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


@contextlib.contextmanager
def cache_span(cache: str) -> Iterator[Span | None]:
    """The span of one cache lookup; set the outcome with :func:`record_hit`."""
    if _ACTIVE.get() is None:
        yield None
        return
    with span(f"cache.lookup {cache}", {"sluice.cache.name": cache}) as current:
        yield current


def record_hit(current: Span | None, hit: bool) -> None:
    """A cache lookup's outcome."""
    if current is not None and current.is_recording():
        current.set_attribute("sluice.cache.hit", hit)
