"""Tracing: one OpenTelemetry trace per event, from the request that made it to delivery.

Each app owns a :class:`Telemetry` with its own ``TracerProvider`` (never the global one, so
two apps in one process, or two tests, stay apart). Spans:

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
when an endpoint is configured, to an OTLP/HTTP collector through the SDK's batch processor.

Code below the step (cascades, caches, egress) reaches the active :class:`Telemetry` through
a context variable set for the step's duration, so models and caches need no tracing wiring.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace import TraceFlags as OtelTraceFlags

from sluice.store.base import CostRecord, Store
from sluice.telemetry.settings import TelemetrySettings
from sluice.telemetry.sink import LocalSpanProcessor, TelemetrySink
from sluice.telemetry.traceparent import format_traceparent, parse_traceparent

if TYPE_CHECKING:
    from sluice.models.base import ModelResult
    from sluice.store.base import Job

_ACTIVE: ContextVar[Telemetry | None] = ContextVar("sluice_telemetry", default=None)
Attributes = Mapping[str, str | bool | int | float]


class Telemetry:
    """The tracer provider, the span store and the cost ledger of one app."""

    def __init__(self, settings: TelemetrySettings, store: Store) -> None:
        self.settings = settings
        self.sink = TelemetrySink(store, settings)
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        )
        if settings.local_spans:
            self.provider.add_span_processor(LocalSpanProcessor(self.sink))
        if settings.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=f"{settings.otlp_endpoint}/v1/traces")
            # The SDK's batch processor exports from its own thread: never on the loop.
            self.provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=8192))
        self.tracer = self.provider.get_tracer("sluice")
        self.enabled = settings.tracing

    # lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start writing buffered spans and ledger rows to the store."""
        self.sink.start()

    async def stop(self) -> None:
        """Write what is buffered and shut the exporters down (before the store closes)."""
        await self.sink.stop()
        if self.settings.otlp_endpoint:
            import asyncio

            await asyncio.to_thread(self.provider.shutdown)

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
                record_exception=False, set_status_on_exception=False,
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
                f"step {step}", context=parent, attributes=attributes,
                record_exception=False, set_status_on_exception=False,
            ) as span,
        ):  # fmt: skip
            yield span
            status = getattr(span, "status", None)
            failed = status is not None and status.status_code is StatusCode.ERROR
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
        self, event_id: str, tenant: str, workflow: str, step: str, calls: Sequence[ModelResult]
    ) -> None:
        """One ledger row per model call (cache hits included, at zero cost)."""
        now = time.time()
        trace_id = current_trace_id()
        for call in calls:
            self.sink.add_cost(
                CostRecord(
                    now, event_id, trace_id, tenant, workflow, step, call.model,
                    call.usage.input_tokens, call.usage.output_tokens, call.cost, call.cached,
                )
            )  # fmt: skip


def _remote_parent(traceparent: str) -> otel_context.Context | None:
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return None
    trace_id, span_id, flags = parsed
    ctx = SpanContext(
        int(trace_id, 16), int(span_id, 16), is_remote=True,
        trace_flags=OtelTraceFlags(flags & 0x01),
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
    with telemetry.tracer.start_as_current_span(
        name, kind=kind, attributes=attributes, record_exception=False,
        set_status_on_exception=False,
    ) as current:  # fmt: skip
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
