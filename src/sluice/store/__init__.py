"""The system of record and queue: the store protocols, the records that cross them, and the
payload codec hook.

:class:`Store` is the whole database, the union of :class:`JobStore` (the runtime's events,
jobs and results), :class:`IngressStore` (quarantine, idempotency keys, API keys),
:class:`TelemetryStore` (spans and the cost ledger) and ``GovernanceStore`` (principals,
roles, tokens and the audit trail, in :mod:`sluice.store.base`). The implementations,
:mod:`sluice.store.sqlite` and :mod:`sluice.store.postgres`, are chosen by the ``store:`` URL
and imported only when used.
"""

from sluice.store.base import (
    COST_GROUPS,
    ApiKeyRecord,
    Completion,
    CostRecord,
    CostTotal,
    EventRecord,
    EventState,
    IdempotencyClaim,
    IngressStore,
    Job,
    JobStore,
    NewEvent,
    QuarantineItem,
    Receipt,
    SpanRecord,
    StepRecord,
    Store,
    TelemetryStore,
)
from sluice.store.codec import PayloadCodec

__all__ = [
    "COST_GROUPS",
    "ApiKeyRecord",
    "Completion",
    "CostRecord",
    "CostTotal",
    "EventRecord",
    "EventState",
    "IdempotencyClaim",
    "IngressStore",
    "Job",
    "JobStore",
    "NewEvent",
    "PayloadCodec",
    "QuarantineItem",
    "Receipt",
    "SpanRecord",
    "StepRecord",
    "Store",
    "TelemetryStore",
]
