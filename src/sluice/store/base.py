"""The Store protocols: system of record and queue in one.

Events, jobs and step results live in one database so the event and its first job, and a
step's result and the next job, are each written in one transaction. Delivery is at least
once; a step result is keyed by (event, step), so a re-run after a crash cannot produce a
second result or a second next job. Payloads cross this boundary as plaintext bytes; the store
applies its :class:`~sluice.store.codec.PayloadCodec` on the way in and out.

The contract comes in four concerns, each with its own contract suite in ``tests/store`` (the
last in ``tests/governance``): :class:`JobStore` (events, jobs, claims, results: the runtime),
:class:`IngressStore` (quarantine, idempotency keys, API keys: ingress),
:class:`TelemetryStore` (spans and the cost ledger: the telemetry sink) and
:class:`GovernanceStore` (principals, their roles and tokens, the audit trail).
:class:`Store` is their union, one database behind all four.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from sluice.store.at_rest import open_text
from sluice.store.codec import PayloadCodec
from sluice.store.managed import ManagedStore


class EventState(StrEnum):
    """Where an event stands."""

    ACCEPTED = "accepted"  # durable, not finished
    DONE = "done"  # every step succeeded; ``result`` holds the last step's output
    DEAD = "dead"  # a step failed for good; ``error`` says why; ``sluice runs replay`` retries


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to accept, with everything its first job needs.

    ``original`` holds the unmasked input, kept (encrypted) only when the workflow asks.
    """

    id: str
    workflow: str
    version: str
    tenant: str
    input: bytes
    first_pool: str
    created_at: float
    deadline: float
    original: bytes | None = None
    #: The W3C ``traceparent`` of the request that made the event: steps continue its trace.
    trace: str | None = None
    #: The feature-flag label from the trusted path (the ``X-Sluice-Flag`` header, bounded to
    #: the declared flags): metadata kept beside the data, so no payload field can set it.
    flag: str | None = None


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """An idempotency key to claim in the same transaction as the event it names."""

    tenant: str
    key: str
    request_hash: str
    window_s: float = 86_400.0


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the caller is told: the event (or quarantine entry), its status, and whether this
    request repeated an earlier one with the same idempotency key."""

    event_id: str
    status: str
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class QuarantineItem:
    """A malformed event kept aside with the reason and its raw payload, never enqueued."""

    id: str
    source: str
    workflow: str
    tenant: str
    reason: str
    problems: tuple[str, ...]
    payload: bytes
    created_at: float


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key as stored: only a hash of its secret is kept."""

    id: str
    tenant: str
    roles: tuple[str, ...]
    secret_hash: str
    created_at: float
    revoked_at: float | None = None
    #: When the key stops working (seconds since the epoch); None: never.
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class PrincipalRecord:
    """A user or service account as stored; ``roles`` are built-in role names."""

    id: str
    name: str
    kind: str  # "user" or "service"
    roles: tuple[str, ...]
    created_at: float
    disabled_at: float | None = None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A principal's bearer token as stored: only a hash of its secret is kept."""

    id: str
    principal_id: str
    secret_hash: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry of the audit trail: who did what to which resource, and why.

    ``before`` and ``after`` are digests of the resource's state (never the state itself);
    ``hash`` covers ``prev_hash`` and the entry's content, so the entries form a chain.
    """

    seq: int
    ts: float
    actor: str
    action: str
    resource: str
    before: str | None
    after: str | None
    why: str
    source: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A signature over the audit chain's head at ``seq`` (Ed25519, base64)."""

    seq: int
    hash: str
    ts: float
    key_id: str
    signature: str


#: The chain head before the first audit entry: sequence 0 and this hash.
GENESIS_HASH = "0" * 64


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed unit of work: run step ``step`` of the event on ``input``."""

    id: int
    event_id: str
    step: int
    pool: str
    workflow: str
    version: str
    tenant: str
    attempts: int
    input: bytes
    ready_at: float
    deadline: float
    owner: str
    trace: str | None = None  # the event's traceparent, copied from job to job
    flag: str | None = None  # the event's feature-flag label, copied from job to job


@dataclass(frozen=True, slots=True)
class Completion:
    """A step's successful output; ``next_pool`` is None when the step was the last one."""

    job: Job
    step_name: str
    output: bytes
    started_at: float
    finished_at: float
    next_pool: str | None


@dataclass(frozen=True, slots=True)
class StepRecord:
    """A committed step result."""

    step: int
    name: str
    attempts: int
    queued_at: float
    started_at: float
    finished_at: float
    output: bytes


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event as stored, with its step results when asked for."""

    id: str
    workflow: str
    version: str
    tenant: str
    state: EventState
    created_at: float
    deadline: float
    finished_at: float | None
    error: str | None
    input: bytes
    result: bytes | None
    steps: Sequence[StepRecord] = field(default_factory=tuple)
    trace: str | None = None
    flag: str | None = None


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One finished span as the local span store keeps it (times in ns since the epoch).

    ``attributes`` hold only what the tracing code put there: names, sizes, outcomes, model
    names, token counts and costs, never payload text.
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    event_id: str | None
    attributes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CostRecord:
    """One model call in the cost ledger; ``cached`` calls were answered by the cache."""

    ts: float
    event_id: str | None
    trace_id: str | None
    tenant: str
    workflow: str
    step: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: float
    cached: bool
    #: ``name@version`` of the prompt template the call rendered (``generate``), else None.
    template: str | None = None


#: The groupings ``cost_totals`` accepts (each a column of the ledger).
COST_GROUPS = ("tenant", "workflow", "model", "step")


@dataclass(frozen=True, slots=True)
class CostTotal:
    """The ledger summed over one group: calls, cache hits among them, tokens and cost."""

    key: str
    calls: int
    cached: int
    input_tokens: int
    output_tokens: int
    cost: float


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """One stored release: an immutable, content-addressed bundle of a workflow version.

    ``manifest`` is the JSON object :mod:`sluice.releases` builds (and hashes into ``id``); the
    store keeps it as it is and never updates a row.
    """

    id: str
    workflow: str
    manifest: Mapping[str, Any]
    created_at: float
    created_by: str = ""
    note: str = ""


#: The column order :func:`event_from_row` reads, shared by every SQL store.
EVENT_COLUMNS = (
    "id, workflow, version, tenant, state, created_at, deadline, finished_at, error, input,"
    " result, trace, flag"
)


def event_from_row(
    row: Sequence[Any], codec: PayloadCodec, steps: Sequence[StepRecord] = ()
) -> EventRecord:
    """An :class:`EventRecord` from a row in :data:`EVENT_COLUMNS` order, payloads and the
    sealed error decoded."""
    decode = codec.decode
    return EventRecord(
        id=row[0], workflow=row[1], version=row[2], tenant=row[3], state=EventState(row[4]),
        created_at=row[5], deadline=row[6], finished_at=row[7], error=open_text(codec, row[8]),
        input=decode(row[9]), result=None if row[10] is None else decode(row[10]), steps=steps,
        trace=row[11], flag=row[12],
    )  # fmt: skip


def job_from_row(row: Sequence[Any], owner: str, decode: Callable[[bytes], bytes]) -> Job:
    """A claimed :class:`Job` from a claim's row (``id, event_id, step, pool, workflow,
    version, tenant, attempts, input, ready_at, deadline, trace, flag``), its input decoded."""
    return Job(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], decode(row[8]),
        row[9], row[10], owner, row[11], row[12],
    )  # fmt: skip


def cost_total_from_row(row: Sequence[Any]) -> CostTotal:
    """A :class:`CostTotal` from a row of (key, calls, cached, input, output, cost) sums."""
    return CostTotal(str(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), float(row[5]))


class JobStore(Protocol):
    """Events, jobs, claims and results: what the runtime needs (``tests/store/test_contract.py``).

    ``depths`` is the ready-job count per pool as this process knows it: kept exact for the
    process's own writes (updated after each commit) and reset from :meth:`queue_depths` by the
    runtime now and then, for other processes' writes. Admission reads it on every accept, so it
    must cost nothing to read.
    """

    depths: Counter[str]

    async def insert_event(
        self, event: NewEvent, idempotency: IdempotencyClaim | None = None
    ) -> Receipt:
        """Write the event and its first job in one transaction.

        With ``idempotency``, the key is claimed in the same transaction: a live key with the
        same request hash returns the original receipt and writes nothing; with another hash it
        raises IdempotencyConflictError.
        """
        ...

    async def claim(self, pool: str, limit: int, owner: str, lease_s: float) -> list[Job]:
        """Lease up to ``limit`` ready jobs of ``pool`` to ``owner``."""
        ...

    async def complete(self, completion: Completion) -> bool:
        """Record a step result and the next job (or finish the event) in one transaction.

        Returns False when the result was already recorded (a re-run): nothing changes.
        """
        ...

    async def retry(self, job: Job, run_at: float, error: str) -> None:
        """Put a failed job back in its queue, to run not before ``run_at``."""
        ...

    async def bury(self, job: Job, error: str) -> None:
        """Dead-letter the job and its event with ``error``."""
        ...

    async def heartbeat(self, owner: str) -> None:
        """Tell other processes that ``owner`` is alive (its leases stay valid)."""
        ...

    async def release(self, owner: str) -> int:
        """Return every job leased by ``owner`` to its queue (clean shutdown)."""
        ...

    async def reclaim(self, stale_after_s: float) -> int:
        """Return jobs whose lease expired or whose owner stopped beating to their queues."""
        ...

    async def replay(self, event_id: str, deadline: float) -> bool:
        """Requeue a dead event's failed job with a fresh budget; False if it is not dead."""
        ...

    async def get_event(self, event_id: str, with_steps: bool = True) -> EventRecord:
        """Return one event; raises NotFoundError."""
        ...

    async def dead_step(self, event_id: str) -> tuple[int, int] | None:
        """The step (index) a dead event died at and the attempts it made; None if not dead."""
        ...

    async def list_events(
        self, state: EventState | None = None, workflow: str | None = None, limit: int = 50
    ) -> list[EventRecord]:
        """Newest events first, optionally filtered."""
        ...

    async def event_states(self, event_ids: Sequence[str]) -> Mapping[str, EventState]:
        """States of the given events (unknown ids are absent)."""
        ...

    async def queue_depths(self) -> Mapping[str, int]:
        """Ready jobs per pool, counted in the database."""
        ...


class IngressStore(Protocol):
    """What ingress keeps beside events (``tests/store/test_ingress_contract.py``): quarantined
    inputs and their replays, idempotency keys past their window, and API keys.

    An idempotency key is claimed with the event it names, by :meth:`JobStore.insert_event` or
    :meth:`quarantine`, so a repeat can never slip between the check and the write.
    """

    async def quarantine(
        self, item: QuarantineItem, idempotency: IdempotencyClaim | None = None
    ) -> Receipt:
        """Keep a malformed event aside (claiming its idempotency key like insert_event)."""
        ...

    async def list_quarantine(self, limit: int = 50) -> list[QuarantineItem]:
        """Quarantined events, newest first."""
        ...

    async def get_quarantined(self, item_id: str) -> QuarantineItem:
        """One quarantined event; raises NotFoundError."""
        ...

    async def drop_quarantined(self, item_id: str) -> bool:
        """Delete a quarantined event; False if there was none."""
        ...

    async def promote_quarantined(self, item_id: str, event: NewEvent) -> Receipt:
        """Accept a repaired quarantined event: insert it and delete the entry, atomically.

        The entry's id is remembered as a link to the event (:meth:`replayed_as`), and its
        idempotency key now names the event.
        """
        ...

    async def update_quarantined(self, item_id: str, problems: Sequence[str]) -> bool:
        """Replace an entry's reason and problems (a replay still failed); False if none."""
        ...

    async def replayed_as(self, item_id: str) -> str | None:
        """The event a replayed quarantine entry became, or None."""
        ...

    async def purge_idempotency(self, older_than: float) -> int:
        """Forget idempotency keys claimed before ``older_than`` (epoch seconds)."""
        ...

    async def put_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new API key."""
        ...

    async def get_api_key(self, key_id: str) -> ApiKeyRecord:
        """One API key; raises NotFoundError."""
        ...

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every API key, newest first."""
        ...

    async def api_key_generation(self) -> int:
        """A number that grows with every revocation: caches of keys compare it cheaply."""
        ...

    async def revoke_api_key(self, key_id: str) -> bool:
        """Mark a key revoked; False if it does not exist or was revoked already."""
        ...


class TelemetryStore(Protocol):
    """The local span store and the cost ledger (``tests/store/test_telemetry_contract.py``)."""

    async def write_telemetry(
        self, spans: Sequence[SpanRecord], costs: Sequence[CostRecord]
    ) -> None:
        """Append finished spans and cost-ledger rows, in one batch."""
        ...

    async def trace_spans(self, trace_id: str) -> list[SpanRecord]:
        """Every stored span of one trace, by start time."""
        ...

    async def event_trace_id(self, event_id: str) -> str | None:
        """The trace id of an event (from its stored traceparent or its spans), or None."""
        ...

    async def cost_totals(self, by: str, since: float) -> list[CostTotal]:
        """Ledger rows since ``since`` summed per ``by`` (one of COST_GROUPS), costliest first."""
        ...

    async def purge_telemetry(
        self, max_spans: int, spans_before: float, costs_before: float
    ) -> int:
        """Bound the span store and the ledger: keep at most ``max_spans`` spans, none from
        before ``spans_before`` and no ledger row from before ``costs_before`` (epoch
        seconds). Returns the rows deleted."""
        ...


class GovernanceStore(Protocol):
    """Principals, their roles and tokens, and the audit trail
    (``tests/governance/test_store_contract.py``).

    The audit trail is append-only through :meth:`append_audit`, which serialises appenders
    (SQLite: its single writer; PostgreSQL: a row lock on the chain head), so concurrent
    writers never fork the chain.
    """

    async def put_principal(self, record: PrincipalRecord) -> bool:
        """Store a new principal; False when its name is taken."""
        ...

    async def get_principal(self, name: str) -> PrincipalRecord:
        """One principal by name; raises NotFoundError."""
        ...

    async def principal_by_id(self, principal_id: str) -> PrincipalRecord:
        """One principal by id; raises NotFoundError."""
        ...

    async def list_principals(self) -> list[PrincipalRecord]:
        """Every principal, by name."""
        ...

    async def disable_principal(self, name: str, at: float) -> bool:
        """Disable a principal (its tokens stop working); False if none or disabled already."""
        ...

    async def grant_role(self, name: str, role: str) -> bool:
        """Give a principal a role; False if it had it (NotFoundError for no principal)."""
        ...

    async def revoke_role(self, name: str, role: str) -> bool:
        """Take a role from a principal; False if it did not have it."""
        ...

    async def put_token(self, record: TokenRecord) -> None:
        """Store a new principal token (only its hash)."""
        ...

    async def get_token(self, token_id: str) -> TokenRecord:
        """One principal token; raises NotFoundError."""
        ...

    async def revoke_token(self, token_id: str, at: float) -> bool:
        """Mark a token revoked; False if there is none or it was revoked already."""
        ...

    async def append_audit(self, seal: Callable[[int, str], AuditRecord]) -> AuditRecord:
        """Append one entry: ``seal(head_seq, head_hash)`` builds it from the chain head (read
        and written in the same transaction, with appenders serialised); returns it."""
        ...

    async def audit_entries(self, after: int = 0, limit: int = 1000) -> list[AuditRecord]:
        """Entries with ``seq > after``, oldest first, at most ``limit``."""
        ...

    async def audit_entry(self, seq: int) -> AuditRecord:
        """One entry; raises NotFoundError."""
        ...

    async def audit_head(self) -> tuple[int, str]:
        """The chain head as recorded: the last sequence number and hash."""
        ...

    async def put_checkpoint(self, record: CheckpointRecord) -> bool:
        """Store a signed checkpoint; False if one exists for that sequence number."""
        ...

    async def checkpoints(self) -> list[CheckpointRecord]:
        """Every signed checkpoint, oldest first."""
        ...


class ReleaseStore(Protocol):
    """Releases: immutable rows, keyed by their content digest (``tests/releases``)."""

    async def put_release(self, record: ReleaseRecord) -> bool:
        """Store ``record`` unless its id is stored already (then nothing changes: a release
        is never updated). Returns whether it was new."""
        ...

    async def get_release(self, release_id: str) -> ReleaseRecord:
        """The release with this id; :class:`~sluice.errors.NotFoundError` if there is none."""
        ...

    async def list_releases(
        self, workflow: str | None = None, limit: int = 100
    ) -> list[ReleaseRecord]:
        """Releases (of one workflow, or all), newest first, at most ``limit``."""
        ...


class Store(
    JobStore, IngressStore, TelemetryStore, GovernanceStore, ReleaseStore, ManagedStore, Protocol
):
    """The whole database: the five concerns and managed configuration
    (:mod:`sluice.store.managed`), plus what spans them (its lifecycle, the payload
    codec every table's payloads pass through, and re-encoding them all). Every implementation
    passes all four contract suites and ``tests/store/test_at_rest.py``.

    Callers that need one concern take its protocol (the runtime a :class:`JobStore`, API keys
    an :class:`IngressStore`, the telemetry sink a :class:`TelemetryStore`); the app, which
    opens and closes the store, and the CLI hold the whole.
    """

    codec: PayloadCodec

    async def open(self) -> None:
        """Connect and apply migrations."""
        ...

    async def aclose(self) -> None:
        """Flush pending writes and release connections."""
        ...

    async def reencode_payloads(self, batch: int = 500) -> int:
        """Rewrite every stored payload that the codec says needs it; return how many."""
        ...
