"""The one way into the runtime: admission, input check, event creation, durable accept.

Every new event passes :meth:`Acceptor.take` once, whoever brings it (the HTTP ingress, ``sluice
run``, :meth:`~sluice.runtime.engine.Runtime.submit`). Its parts are narrow and run in this
order, cheapest first:

1. **admission** (:meth:`Acceptor.admit`): the first pool's queue is below its ``queue_limit``,
   the workflow's SLO guard admits, and no spend budget refuses;
2. **input check** (:meth:`Acceptor.check`): the workflow's JSON Schema, a compiled validator
   for the common valid case; problems found earlier by the caller (a source mapping's)
   refuse the event here too, so admission is always judged first;
3. **event creation** (:meth:`Acceptor.event`): PII masking when the caller asks for it, the
   deadline from the workflow budget, the current trace context;
4. **durable accept** (:meth:`Acceptor.commit`): the event, its first job and its idempotency
   key in one transaction, then a wake-up of the first pool's workers in this process.

The shape of the data (depth, field count) is the caller's to bound: the HTTP ingress reads
every body with :func:`sluice.ingress.limits.read_json`, which checks it once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jsonschema
import jsonschema_rs
import orjson

from sluice.config import PoolSettings
from sluice.errors import AdmissionError, InvalidInputError
from sluice.ids import new_event_id
from sluice.store.base import IdempotencyClaim, JobStore, NewEvent, Receipt
from sluice.telemetry.tracing import Telemetry, current_traceparent
from sluice.workflow.input_errors import schema_problems
from sluice.workflow.model import Workflow


class Masking(Protocol):
    """What masks an event's text fields before it is written (the ingress's PII masking)."""

    def apply(self, data: Any) -> tuple[Any, bytes | None]:
        """``data`` with its fields masked, and the originals to keep encrypted (or None)."""
        ...


class InputRejectedError(InvalidInputError):
    """The input failed the workflow's schema (or the caller's own checks): ``problems`` says
    how, each with its path and never a value."""

    def __init__(self, workflow: Workflow, problems: Sequence[str]) -> None:
        super().__init__(
            f"input does not match the schema of workflow {workflow.name!r}", list(problems)
        )


@dataclass(frozen=True, slots=True)
class Submission:
    """One event offered to :meth:`Acceptor.take` (one input object, so adding a field breaks
    no caller).

    ``claim`` is the idempotency key to claim in the event's transaction; ``flag`` the
    feature-flag label the caller vouches for (already bounded); ``masking`` the PII masking
    to apply after the input check; ``problems`` what the caller already found wrong with the
    input (refused after admission, like the schema's own); ``span`` asks for an
    ``accept {workflow}`` span around the event's creation and write (the ingress's requests
    have one; in-process submissions keep the caller's span, if any, as their parent).
    """

    workflow: Workflow
    tenant: str
    data: Any
    claim: IdempotencyClaim | None = None
    flag: str | None = None
    masking: Masking | None = None
    problems: Sequence[str] = ()
    span: bool = False


class Acceptor:
    """Takes new events into the runtime of this process; see the module docstring."""

    def __init__(
        self,
        store: JobStore,
        pools: Mapping[str, PoolSettings],
        services: Mapping[str, Any],
        wake: Callable[[str], None],
        telemetry: Telemetry | None = None,
    ) -> None:
        self._store = store
        self._pools = pools
        self._services = services
        self._wake = wake
        self._telemetry = telemetry if telemetry is not None and telemetry.enabled else None
        # Accepts written but not yet committed, per first pool: admission counts them.
        self.pending: Counter[str] = Counter()
        self._validators: dict[tuple[str, str], tuple[Any, jsonschema.Draft202012Validator]] = {}

    async def take(self, sub: Submission) -> Receipt:
        """Admit, check, create and durably accept one event: its receipt.

        Raises :class:`~sluice.errors.AdmissionError` when the event cannot be taken now and
        :class:`InputRejectedError` when its input is invalid (the caller may quarantine it).
        """
        wf = sub.workflow
        self.admit(wf, sub.tenant)
        problems = sub.problems or self.check(wf, sub.data)
        if problems:
            raise InputRejectedError(wf, problems)
        if self._telemetry is None or not sub.span:
            return await self._create_and_commit(sub)
        attributes = {"sluice.workflow": wf.name, "sluice.tenant": sub.tenant}
        with self._telemetry.span(f"accept {wf.name}", attributes) as span:
            # The event keeps this span's context: its steps continue the trace.
            receipt = await self._create_and_commit(sub)
            if span is not None:
                span.set_attributes(
                    {"sluice.event_id": receipt.event_id, "sluice.duplicate": receipt.duplicate}
                )
        return receipt

    async def _create_and_commit(self, sub: Submission) -> Receipt:
        data, original = sub.data, None
        if sub.masking is not None:
            data, original = sub.masking.apply(data)
        event = self.event(sub.workflow, data, sub.tenant, original, sub.flag)
        return await self.commit(event, sub.claim)

    # the parts -----------------------------------------------------------------------------
    def queue_depth(self, pool: str) -> int:
        """Ready jobs of ``pool`` as this process knows them, plus accepts in flight."""
        return self._store.depths[pool] + self.pending[pool]

    def admit(self, workflow: Workflow, tenant: str = "default") -> None:
        """Refuse with AdmissionError when the event cannot be taken now.

        The workflow's first pool has a full queue (backpressure), its SLO guard is shedding
        or closed, or a spend budget of the workflow or tenant is used up (refuse policy).
        """
        pool = workflow.first_pool
        limit = self._pools[pool].queue_limit
        if self.queue_depth(pool) >= limit:
            raise AdmissionError(
                f"pool {pool!r} has {limit} events waiting (its queue_limit); retry later",
                retry_after=1.0,
            )
        if (guards := self._services.get("slo_guards")) is not None:
            guards.check(workflow.name)
        if (gate := self._services.get("escalation")) is not None:
            gate.check(workflow.name, tenant)

    def check(self, workflow: Workflow, data: Any) -> list[str]:
        """Every way ``data`` fails the workflow's input schema, each with its path (no values).

        A compiled (Rust) validator answers the common case, valid input, in well under a
        microsecond; only invalid input pays for the detailed messages of ``jsonschema``.
        """
        key = (workflow.name, workflow.version)
        compiled = self._validators.get(key)
        if compiled is None:
            compiled = (
                jsonschema_rs.validator_for(dict(workflow.input_schema)),
                jsonschema.Draft202012Validator(workflow.input_schema),
            )
            self._validators[key] = compiled
        fast, detailed = compiled
        if fast.is_valid(data):
            return []
        # Messages name the path, rule and kind of value, never the value: they are stored,
        # logged and returned, and a value may be PII.
        return schema_problems(detailed.iter_errors(data))

    def event(
        self,
        workflow: Workflow,
        data: Any,
        tenant: str,
        original: bytes | None = None,
        flag: str | None = None,
    ) -> NewEvent:
        """An event of ``workflow`` on ``data``, with its deadline from the workflow budget.

        The current span's context (the request's, when there is one) is kept with the event,
        so its steps continue that trace wherever they run. ``flag`` is the feature-flag label
        the caller vouches for (already bounded), kept beside the data, never in it.
        """
        now = time.time()
        return NewEvent(
            id=new_event_id(),
            workflow=workflow.name,
            version=workflow.version,
            tenant=tenant,
            input=orjson.dumps(data),
            first_pool=workflow.first_pool,
            created_at=now,
            deadline=now + workflow.budget_ms / 1000,
            original=original,
            trace=current_traceparent(),
            flag=flag,
        )

    async def commit(self, event: NewEvent, claim: IdempotencyClaim | None = None) -> Receipt:
        """Durably accept ``event`` (claiming its idempotency key); wake its first pool."""
        pool = event.first_pool
        self.pending[pool] += 1
        try:
            receipt = await self._store.insert_event(event, claim)
        finally:
            self.pending[pool] -= 1
        if not receipt.duplicate:
            self._wake(pool)
        return receipt
