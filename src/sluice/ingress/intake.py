"""The ingress: turns a request into an accepted, durable event or a clear refusal.

The order matters and is cheapest-first: authenticate (or verify the webhook signature), answer
a repeated idempotency key from memory, rate limit, map a webhook's payload to the workflow's
input; then one call into the runtime (:meth:`~sluice.runtime.acceptor.Acceptor.take`):
admission (queue depth, SLO guard, spend), JSON Schema, event creation and the durable write.
A malformed event is quarantined with its reason and raw payload, never enqueued. Text fields
the workflow marks are PII-masked before the event is written, so nothing downstream - models,
caches, logs - sees the originals.

Bodies are read once with the shape limits (:func:`~sluice.ingress.limits.read_json`), so the
shape is not checked again on the way in; only payloads parsed elsewhere (a quarantined one
replayed, the ``sluice run`` input) are.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from sluice.app import SluiceApp
from sluice.errors import ConfigError, NotFoundError, RateLimitedError
from sluice.guard.crypto import AesGcmCodec
from sluice.guard.pii import PiiMasker
from sluice.ids import new_event_id
from sluice.ingress.apikeys import ApiKeyAuth
from sluice.ingress.limits import RequestError, read_json, shape_problem
from sluice.ingress.mapping import SourceMapping
from sluice.ingress.ratelimit import RateLimiter, RatePolicy
from sluice.ingress.settings import IngressSettings, SourceSettings
from sluice.ingress.signatures import WebhookVerifier
from sluice.kv.limiter import KVRateLimiter
from sluice.kv.single_flight import SingleFlight
from sluice.runtime.acceptor import InputRejectedError, Submission
from sluice.store.base import IdempotencyClaim, QuarantineItem, Receipt
from sluice.telemetry.metrics import NO_FLAG
from sluice.workflow.model import Workflow

API_SOURCE = "api"
_NOT_JSON = object()  # a webhook body that does not parse: quarantined with the parser's reason
_COUNTERS_MAX = 4_096
log = logging.getLogger("sluice.ingress")


@dataclass(frozen=True, slots=True)
class _Masking:
    masker: PiiMasker
    fields: tuple[str, ...]
    keep_original: bool

    def apply(self, data: Any) -> tuple[Any, bytes | None]:
        """``data`` with the marked text fields masked, and the originals when kept."""
        if not isinstance(data, dict):
            return data, None
        texts = {f: data[f] for f in self.fields if isinstance(data.get(f), str)}
        if not texts:
            return data, None
        masked = dict(data)
        for name, result in self.masker.mask_fields(texts).items():
            masked[name] = result.masked
        return masked, orjson.dumps(texts) if self.keep_original else None


@dataclass(frozen=True, slots=True)
class _Source:
    settings: SourceSettings
    verifier: WebhookVerifier
    mapping: SourceMapping


class Ingress:
    """Owns the checks of the way in; the HTTP layer only translates to and from HTTP."""

    def __init__(
        self,
        app: SluiceApp,
        settings: IngressSettings,
        limiter: RateLimiter | None = None,
        recent_receipts: int = 50_000,
    ) -> None:
        self.app = app
        self._acceptor = app.runtime.acceptor
        self.auth = ApiKeyAuth(app.store)
        # Buckets live in the app's KV: in-process by default, shared through Redis if set.
        self._limiter = limiter or KVRateLimiter(app.kv)
        self.settings, self._policy, self._sources = settings, *self._compile(settings)
        problems: list[str] = []
        self._masking: dict[tuple[str, str], _Masking | None] = {}
        for wf in app.registry:
            try:
                self._masking[(wf.name, wf.version)] = self._build_masking(wf)
            except ConfigError as exc:
                problems.append(f"workflow {wf.name}: {exc}")
        if problems:
            raise ConfigError("invalid ingress configuration", problems)
        # Receipts of recent idempotent requests: repeats are answered without a write.
        self._recent: OrderedDict[tuple[str, str], tuple[str, Receipt, float]] = OrderedDict()
        self._recent_size = recent_receipts
        # Children of the accepted counter by (tenant, workflow, source, flag).
        self._accepted_counters: dict[tuple[str, str, str, str | None], Any] = {}
        # Idempotency keys (with the body's hash) being accepted right now.
        self._in_flight: SingleFlight[tuple[str, str, str], Receipt] = SingleFlight()

    def _compile(self, settings: IngressSettings) -> tuple[RatePolicy, dict[str, _Source]]:
        """The rate policy and the sources of ``settings``, or every problem at once."""
        problems: list[str] = []
        policy: RatePolicy | None = None
        try:
            policy = RatePolicy(settings.rate_limits)
            policy.check_workflows({wf.name for wf in self.app.registry})
        except ConfigError as exc:
            problems.extend(exc.problems or [str(exc)])
        sources: dict[str, _Source] = {}
        for name, src in settings.sources.items():
            try:
                self.app.registry.get(src.workflow)
                sources[name] = _Source(
                    src, WebhookVerifier(src.secrets), SourceMapping(src.mapping)
                )
            except (NotFoundError, ConfigError) as exc:
                problems.append(f"sources.{name}: {exc}")
        if problems or policy is None:
            raise ConfigError("invalid ingress configuration", problems)
        return policy, sources

    def reload(self, settings: IngressSettings) -> list[str]:
        """Apply new ingress settings (sources and their mappings and secrets, rate limits,
        body limits, the idempotency window) to the requests that arrive from now on.

        Everything is checked before anything changes: on a problem :class:`ConfigError` is
        raised and the settings in force stay. Returns what changed, one line per change.
        """
        policy, sources = self._compile(settings)
        old = self.settings
        changes = [
            f"sources.{name}: {'added' if name not in old.sources else 'removed'}"
            for name in sorted(set(old.sources) ^ set(settings.sources))
        ]
        changes += [
            f"sources.{name}: changed"
            for name in sorted(set(old.sources) & set(settings.sources))
            if old.sources[name] != settings.sources[name]
        ]
        if old.rate_limits != settings.rate_limits:
            changes.append("rate_limits: changed")
        if old.limits != settings.limits:
            changes.append("ingress limits: changed")
        if old.idempotency_window_s != settings.idempotency_window_s:
            changes.append("ingress.idempotency_window_s: changed")
        # One assignment each, between two awaits of nothing: a request sees the old settings
        # or the new ones, never a mix of a new source with an old policy.
        self.settings, self._policy, self._sources = settings, policy, sources
        return changes

    def _build_masking(self, wf: Workflow) -> _Masking | None:
        spec = wf.extra.get("pii")
        if not spec:
            return None
        fields = tuple(spec.get("fields") or ())
        if not fields:
            raise ConfigError("pii.fields: list the text fields to mask")
        keep = bool(spec.get("keep_original", False))
        if keep and not isinstance(self.app.store.codec, AesGcmCodec):
            raise ConfigError("pii.keep_original needs encryption at rest (an encryption key)")
        return _Masking(PiiMasker(spec.get("types")), fields, keep)

    # the two ways in --------------------------------------------------------------------------
    async def api_run(
        self,
        tenant: str,
        workflow_name: str,
        body: bytes,
        data: Any,
        key: str | None,
        flag: str | None = None,
        *,
        shape_checked: bool = True,
    ) -> Receipt:
        """An authenticated API call's run; invalid input is quarantined and raised.

        ``data`` is ``body`` as :func:`~sluice.ingress.limits.read_json` read it (its shape
        checked); ``shape_checked=False`` checks it here (input parsed some other way).
        ``flag`` (a feature-flag label, already bounded by ``Metrics.flag``) travels with the
        event as metadata beside its data, so steps' metrics are labelled with it; a body
        field of any name is only data.
        """
        wf = self.app.registry.get(workflow_name)
        too_big = None if shape_checked else shape_problem(data, self.settings.limits)
        if too_big is not None:
            problems: tuple[str, ...] = (too_big,)
        else:
            problems = ()
        if key is None:
            return await self._api_run(tenant, wf, body, data, None, flag, problems)
        claim = self._claim(tenant, f"api:{wf.name}:{key}", body)
        return await self._single_flight(
            claim, lambda: self._api_run(tenant, wf, body, data, claim, flag, problems)
        )

    async def _api_run(
        self,
        tenant: str,
        wf: Workflow,
        body: bytes,
        data: Any,
        claim: IdempotencyClaim | None,
        flag: str | None,
        problems: tuple[str, ...],
    ) -> Receipt:
        if claim is not None and (hit := self._recent_hit(claim)) is not None:
            return hit
        await self._limit(tenant, wf.name)
        masking = self._masking.get((wf.name, wf.version))
        sub = Submission(wf, tenant, data, claim, flag, masking, problems, span=True)
        try:
            receipt = await self._acceptor.take(sub)
        except InputRejectedError as exc:
            await self._quarantine(API_SOURCE, wf, tenant, body, exc.problems, claim)
            raise
        return self._accepted(wf, tenant, claim, flag, receipt)

    async def webhook(self, source: str, headers: Mapping[str, str], body: bytes) -> Receipt:
        """A signed webhook delivery; malformed payloads are quarantined (202 for the sender)."""
        src = self._sources.get(source)
        if src is None:
            raise NotFoundError(f"unknown webhook source {source!r}")
        msg_id = src.verifier.verify(headers, body)
        # Read once, with the shape limits: JSON too deep or too wide is refused (413) and not
        # quarantined, since no replay could ever take it; text that is not JSON at all is
        # the sender's malformed event, quarantined below like any other.
        try:
            payload: Any = read_json(body, self.settings.limits)
        except RequestError as exc:
            if exc.status == 413:
                raise
            payload = _NOT_JSON
        claim = self._claim(src.settings.tenant, f"hook:{source}:{msg_id}", body)
        return await self._single_flight(claim, lambda: self._webhook(src, body, payload, claim))

    async def _webhook(
        self, src: _Source, body: bytes, payload: Any, claim: IdempotencyClaim
    ) -> Receipt:
        tenant = src.settings.tenant
        wf = self.app.registry.get(src.settings.workflow)
        if (hit := self._recent_hit(claim)) is not None:
            return hit
        await self._limit(tenant, wf.name)
        if payload is _NOT_JSON:
            data, problems = self.normalize(src, wf, body)  # the parser's own words
        else:
            # Shape-checked when read; the mapping only picks parts of it.
            data, problems = src.mapping.apply(payload)
        masking = self._masking.get((wf.name, wf.version))
        sub = Submission(wf, tenant, data, claim, None, masking, problems, span=True)
        try:
            receipt = await self._acceptor.take(sub)
        except InputRejectedError as exc:
            return await self._quarantine(src.settings.name, wf, tenant, body, exc.problems, claim)
        return self._accepted(wf, tenant, claim, None, receipt)

    def normalize(self, src: _Source | None, wf: Workflow, body: bytes) -> tuple[Any, list[str]]:
        """Parse, map and validate a raw payload; return the input and every problem."""
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return None, [f"body is not JSON: {exc}"]
        return self._map_and_check(src, wf, payload)

    def _map_and_check(
        self, src: _Source | None, wf: Workflow, payload: Any
    ) -> tuple[Any, list[str]]:
        if src is not None:
            payload, problems = src.mapping.apply(payload)
            if problems:
                return None, problems
        return payload, self._shape_and_schema(wf, payload)

    async def replay_quarantined(self, item_id: str) -> tuple[Receipt | None, list[str]]:
        """Normalize a quarantined payload again under today's mapping and schema.

        An entry that passes becomes an event (its id and idempotency key lead there); one
        that still fails keeps today's problems as its reason.
        """
        item = await self.app.store.get_quarantined(item_id)
        wf = self.app.registry.get(item.workflow)
        src = self._sources.get(item.source)
        if item.source != API_SOURCE and src is None:
            problems = [f"webhook source {item.source!r} is no longer configured"]
        else:
            data, problems = self.normalize(src, wf, item.payload)
        if problems:
            await self.app.store.update_quarantined(item_id, problems)
            return None, problems
        masking = self._masking.get((wf.name, wf.version))
        masked, original = (data, None) if masking is None else masking.apply(data)
        event = self._acceptor.event(wf, masked, item.tenant, original)
        receipt = await self.app.store.promote_quarantined(item_id, event)
        self.app.runtime.wake(wf.first_pool)
        return receipt, []

    async def purge_expired_keys(self, every_s: float = 60.0) -> None:
        """Forget idempotency keys past their window, every ``every_s``, until cancelled.

        Keys are checked against their window when used, so this only bounds the table.
        """
        while True:
            await asyncio.sleep(every_s)
            try:
                cutoff = time.time() - self.settings.idempotency_window_s
                await self.app.store.purge_idempotency(cutoff)
            except Exception:  # a bad moment must not end the loop
                log.exception("purging expired idempotency keys failed")

    # the steps ------------------------------------------------------------------------------
    async def _single_flight(
        self, claim: IdempotencyClaim, work: Callable[[], Awaitable[Receipt]]
    ) -> Receipt:
        """Run ``work`` once for concurrent requests with one idempotency key and body.

        Followers wait for the leader's receipt instead of each taking a queue slot and a
        write (:class:`~sluice.kv.single_flight.SingleFlight`). A follower with another body
        takes the full path itself (where the store answers the conflict); the followers of
        a leader that failed try again under a new leader.
        """
        # The body's hash is part of the key: a follower with another body leads a flight of
        # its own, and the store answers it with the conflict. A leader's error is its own
        # (a rate limit, a full queue): its followers try again under a new leader.
        key = (claim.tenant, claim.key, claim.request_hash)
        receipt, shared = await self._in_flight.do_shared(key, work, share_errors=False)
        if shared:
            return Receipt(receipt.event_id, receipt.status, duplicate=True)
        return receipt

    def _claim(self, tenant: str, key: str, body: bytes) -> IdempotencyClaim:
        digest = hashlib.sha256(body).hexdigest()
        return IdempotencyClaim(tenant, key, digest, self.settings.idempotency_window_s)

    def _recent_hit(self, claim: IdempotencyClaim) -> Receipt | None:
        found = self._recent.get((claim.tenant, claim.key))
        if found is None or found[2] < time.time() - claim.window_s:
            return None
        if found[0] != claim.request_hash:
            return None  # let the store raise the conflict, with the authoritative record
        return Receipt(found[1].event_id, found[1].status, duplicate=True)

    def _remember(self, claim: IdempotencyClaim | None, receipt: Receipt) -> None:
        if claim is None or receipt.duplicate:
            return
        self._recent[(claim.tenant, claim.key)] = (claim.request_hash, receipt, time.time())
        if len(self._recent) > self._recent_size:
            self._recent.popitem(last=False)

    async def _limit(self, tenant: str, workflow: str) -> None:
        for bucket in self._policy.buckets(tenant, workflow):
            wait = await self._limiter.acquire(bucket.key, bucket.rate)
            if wait > 0:
                scope = f" for {workflow!r}" if bucket.scope == "workflow" else ""
                raise RateLimitedError(
                    f"tenant {tenant!r} is over its rate limit of {bucket.rate.rate:g}/s{scope}",
                    retry_after=wait,
                )

    def _shape_and_schema(self, wf: Workflow, data: Any) -> list[str]:
        """For input not read by ``read_json`` (a quarantined payload replayed)."""
        too_big = shape_problem(data, self.settings.limits)
        if too_big:
            return [too_big]
        return self._acceptor.check(wf, data)

    def _accepted(
        self,
        wf: Workflow,
        tenant: str,
        claim: IdempotencyClaim | None,
        flag: str | None,
        receipt: Receipt,
    ) -> Receipt:
        if log.isEnabledFor(logging.DEBUG):  # the check costs less than building the extra
            log.debug("accepted %s", receipt.event_id, extra={"event_id": receipt.event_id,
                      "tenant": tenant, "workflow": wf.name})  # fmt: skip
        self._remember(claim, receipt)
        if not receipt.duplicate:
            source = API_SOURCE if claim is None or claim.key.startswith("api:") else "hook"
            key = (tenant, wf.name, source, flag)
            counter = self._accepted_counters.get(key)
            if counter is None:
                # ``labels()`` takes a lock and builds its key on every call: the child is
                # resolved once per label set (bounded: cleared when full, a miss is cheap).
                if len(self._accepted_counters) >= _COUNTERS_MAX:
                    self._accepted_counters.clear()
                tenant_label = self.app.metrics.tenant(tenant)
                counter = self.app.metrics.accepted.labels(
                    tenant_label, wf.name, source, flag or NO_FLAG
                )
                self._accepted_counters[key] = counter
            counter.inc()
        return receipt

    async def _quarantine(
        self,
        source: str,
        wf: Workflow,
        tenant: str,
        body: bytes,
        problems: Sequence[str],
        claim: IdempotencyClaim | None,
    ) -> Receipt:
        item = QuarantineItem(
            id=new_event_id(),
            source=source,
            workflow=wf.name,
            tenant=tenant,
            reason=problems[0],
            problems=tuple(problems),
            payload=body,
            created_at=time.time(),
        )
        receipt = await self.app.store.quarantine(item, claim)
        # Not remembered in memory: a replay (often by another process) may turn the entry
        # into an event, and a redelivery must then learn that from the store.
        if not receipt.duplicate:
            tenant_label = self.app.metrics.tenant(tenant)
            self.app.metrics.quarantined.labels(tenant_label, wf.name, source).inc()
        return receipt
