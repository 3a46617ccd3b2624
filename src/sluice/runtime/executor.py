"""Running one claimed job: time budgets, output checks, and what happens on failure.

A step runs under ``min(step budget, time left in the event's budget)``. On success its output
(which must be a JSON object) and the next job are committed together. On failure the job is
retried with jittered exponential backoff while the step has retries left and the event's
budget allows the wait; otherwise it is dead-lettered with an error that says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from opentelemetry import trace

from sluice.backoff import backoff_delay
from sluice.errors import (
    BudgetExceededError,
    NotFoundError,
    StepError,
    StepOutputError,
)
from sluice.guard.pii import PiiMasker
from sluice.reliability.slo_guards import SloGuards
from sluice.store.base import Completion, Job, JobStore
from sluice.telemetry import tracing
from sluice.telemetry.metrics import Metrics
from sluice.telemetry.tracing import Telemetry
from sluice.workflow.context import StepContext
from sluice.workflow.model import Step, Workflow
from sluice.workflow.registry import WorkflowRegistry

log = logging.getLogger("sluice.runtime")
# A step's error may quote the payload it failed on (``could not parse {text}``): the store
# seals it like the payload, and the log gets it masked whatever formatter the process uses.
_masker = PiiMasker()


def attempts(n: int) -> str:
    """``n`` attempts, in words: "1 attempt", "3 attempts"."""
    return f"{n} attempt" if n == 1 else f"{n} attempts"


# Called after a job's fate is committed: (job, finished event?, next pool or None).
Settled = Callable[[Job, bool, str | None], None]


class StepExecutor:
    """Runs claimed jobs against the registry's workflows and commits their outcome."""

    def __init__(
        self,
        store: JobStore,
        registry: WorkflowRegistry,
        services: Mapping[str, Any],
        on_settled: Settled,
        backoff: Callable[[int, float | None], float] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._services = services
        self._on_settled = on_settled
        self._metrics = metrics
        self._guards: SloGuards | None = services.get("slo_guards")
        telemetry: Telemetry | None = services.get("telemetry")
        self._telemetry = telemetry if telemetry is not None and telemetry.enabled else None
        self._backoff = backoff or (
            lambda attempt, after: backoff_delay(attempt, retry_after=after)
        )

    async def execute(self, job: Job) -> None:
        """Run ``job`` and commit its result, retry or dead letter (in the event's trace)."""
        if self._telemetry is None:
            await self._execute(job)
            return
        with self._telemetry.step_span(job, self._step_name(job)):
            await self._execute(job)

    def _step_name(self, job: Job) -> str:
        try:
            return self._registry.get(job.workflow, job.version).steps[job.step].name
        except (NotFoundError, IndexError):
            return f"#{job.step}"

    async def _execute(self, job: Job) -> None:
        try:
            workflow = self._registry.get(job.workflow, job.version)
        except NotFoundError as exc:
            await self._bury(job, f"{exc}; load that workflow version to replay this event")
            return
        step = workflow.steps[job.step]
        if job.attempts > step.retries + 1:
            # Only possible when leases were lost, i.e. the step kept killing its worker.
            await self._bury(job, f"step {step.name!r}: gave up after {attempts(job.attempts - 1)}")
            return
        started = time.time()
        remaining = job.deadline - started
        if remaining <= 0:
            await self._bury(
                job, f"step {step.name!r}: event budget of {workflow.budget_ms} ms used up"
            )
            return
        try:
            output = await self._run(job, workflow, step, started, remaining)
        except StepError as exc:
            self._observe_step(job, step, started, "error")
            tracing.fail(trace.get_current_span(), exc)
            await self._fail(job, workflow, step, exc)
            return
        self._observe_step(job, step, started, "ok")
        next_pool = (
            workflow.steps[job.step + 1].pool if job.step + 1 < len(workflow.steps) else None
        )
        completion = Completion(
            job=job,
            step_name=step.name,
            output=output,
            started_at=started,
            finished_at=time.time(),
            next_pool=next_pool,
        )
        first = await self._store.complete(completion)
        if first and next_pool is None:
            self._observe_event(job, workflow, "done")
        self._on_settled(job, next_pool is None, next_pool)

    def _observe_step(self, job: Job, step: Step, started: float, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.step_seconds.labels(
                job.workflow, job.version, step.name, outcome
            ).observe(time.time() - started)

    def _observe_event(self, job: Job, workflow: Workflow | None, outcome: str) -> None:
        if workflow is None:
            with contextlib.suppress(NotFoundError):
                workflow = self._registry.get(job.workflow, job.version)
        seconds = (
            None if workflow is None else time.time() - (job.deadline - workflow.budget_ms / 1000)
        )
        if self._guards is not None and seconds is not None:
            # The SLO guard judges accept-to-end latency and the share of events that died.
            self._guards.record(job.workflow, seconds * 1000, outcome == "done")
        if self._metrics is None:
            return
        tenant, flag = self._metrics.tenant(job.tenant), self._metrics.flag(job.flag)
        self._metrics.finished.labels(tenant, job.workflow, job.version, outcome, flag).inc()
        if seconds is not None and outcome == "done":
            latency = self._metrics.event_seconds.labels(tenant, job.workflow, job.version, flag)
            latency.observe(seconds)

    async def _run(
        self, job: Job, workflow: Workflow, step: Step, started: float, remaining: float
    ) -> bytes:
        ctx = StepContext(
            event_id=job.event_id,
            workflow=job.workflow,
            version=job.version,
            tenant=job.tenant,
            step=step.name,
            attempt=job.attempts,
            options=step.options,
            deadline=job.deadline,
            logger=log,
            services=self._services,
            flag=job.flag,
        )
        step_budget = step.budget_ms / 1000
        try:
            data = orjson.loads(job.input)
        except orjson.JSONDecodeError as exc:
            raise StepOutputError(f"stored input of step {step.name!r} is not JSON: {exc}") from exc
        limit = min(step_budget, remaining)
        try:
            async with asyncio.timeout(limit) as scope:
                out: Awaitable[Any] = step.fn(ctx, data)
                result = await out
        except TimeoutError as exc:
            if not scope.expired():
                raise StepError(f"step {step.name!r}: {exc or 'timed out'}") from exc
            if step_budget <= remaining:
                raise BudgetExceededError(
                    f"step {step.name!r} overran its step budget of {step.budget_ms} ms",
                    budget="step",
                    retryable=True,
                ) from None
            raise BudgetExceededError(
                f"step {step.name!r} overran the event budget of {workflow.budget_ms} ms",
                budget="event",
                retryable=False,
            ) from None
        except StepError:
            raise
        except Exception as exc:
            raise StepError(f"step {step.name!r} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(result, dict):
            raise StepOutputError(
                f"step {step.name!r} returned {type(result).__name__}; a step must return a"
                " JSON object (dict)"
            )
        try:
            return orjson.dumps(result)
        except TypeError as exc:
            raise StepOutputError(
                f"step {step.name!r} returned data that cannot be stored as JSON: {exc}"
            ) from exc

    async def _fail(self, job: Job, workflow: Workflow, step: Step, exc: StepError) -> None:
        message = str(exc)
        if not exc.retryable:
            await self._bury(job, f"{message} (not retryable)")
            return
        if job.attempts > step.retries:
            await self._bury(job, f"{message} (no retries left after {attempts(job.attempts)})")
            return
        delay = self._backoff(job.attempts, exc.retry_after)
        run_at = time.time() + delay
        if run_at >= job.deadline:
            await self._bury(
                job,
                f"{message} (a retry in {delay * 1000:.0f} ms would pass the event budget of"
                f" {workflow.budget_ms} ms)",
            )
            return
        if log.isEnabledFor(logging.INFO):  # masking costs a scan; skip it when not logged
            log.info("retrying %s step %s in %.3fs: %s", job.event_id, step.name, delay,
                     _masker.mask(message).masked, extra=_context(job, step.name))  # fmt: skip
        await self._store.retry(job, run_at, message)
        self._on_settled(job, False, job.pool)

    async def _bury(self, job: Job, message: str) -> None:
        log.warning("event %s dead: %s", job.event_id, _masker.mask(message).masked,
                    extra=_context(job, None))  # fmt: skip
        await self._store.bury(job, message)
        self._observe_event(job, None, "dead")
        self._on_settled(job, True, None)


def _context(job: Job, step: str | None) -> dict[str, str | None]:
    """The context fields of a log record about ``job``."""
    return {"event_id": job.event_id, "step": step, "tenant": job.tenant, "workflow": job.workflow,
            "pool": job.pool}  # fmt: skip
