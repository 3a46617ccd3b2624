"""The call path of the AI gateway: one chat completion, from a tenant's request to an answer.

Cheapest checks first, as at the ingress: the body's shape, the model group, the tenant's
request rate (a token bucket) and token budget (a per-minute window), both through the app's
rate limiter on its KV (:mod:`sluice.kv.limiter`), the idempotency key (replay, wait or lead),
the response cache (both on the app's KV when it is shared, see ``backend: auto`` in
:mod:`sluice.ai_gateway.config`), the group's SLO guard,
the tenant's spend budget (a reservation at the most the call can cost, settled at what it
did cost). Then the group's deployments are tried in order, each behind its circuit breaker
(``gateway:NAME``): a retryable failure (429, 5xx, timeout, refused connection) moves on to
the next one, a request the provider judges invalid comes back as it is. Streams fall back the
same way until a provider answers 200; from then on its events are relayed one by one.

Refusals raise Sluice errors (:mod:`sluice.ai_gateway.routes` renders them OpenAI-shaped):
``InvalidInputError`` (400), ``NotFoundError`` (404, unknown model), ``RateLimitedError`` and
``BudgetExhaustedError`` (429), ``IdempotencyConflictError`` (409), ``AdmissionError`` (503:
SLO guard closed, or every deployment's breaker open) and
:class:`~sluice.outbound.upstream.UpstreamError` (the provider's own answer, or 502).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from sluice.ai_gateway.config import Deployment, GatewaySettings
from sluice.ai_gateway.idempotency import IdempotencyKeys, Lead
from sluice.ai_gateway.metrics import GatewayMetrics
from sluice.ai_gateway.streaming import completion_events
from sluice.cache.completions import CompletionCache
from sluice.cache.config import build_backend
from sluice.cache.keys import stable_hash
from sluice.cache.kv_backend import is_shared
from sluice.errors import AdmissionError, InvalidInputError, NotFoundError, RateLimitedError
from sluice.governance.routing import Routing, provider_of
from sluice.ingress.limits import Limits, checked_idempotency_key, read_json
from sluice.kv.base import KV
from sluice.kv.limiter import KVRateLimiter
from sluice.models.base import Usage
from sluice.models.estimate import prompt_tokens
from sluice.models.prices import Price
from sluice.models.sse import StreamAssembler
from sluice.outbound.policy import EgressPolicy
from sluice.outbound.upstream import Upstream, UpstreamError
from sluice.reliability.breaker import BreakerOpenError, BreakerRegistry
from sluice.reliability.slo_guard import SloGuard
from sluice.reliability.spend import Reservation, SpendBudgets

log = logging.getLogger("sluice.gateway")

# The ingress's nesting limit (the body is written again for each deployment, and orjson
# writes fewer levels than it reads); fields are bounded by the body size, since a long
# conversation with tools is wide by nature.
SHAPE = Limits(max_fields=100_000)
JSON = "application/json"
SSE = "text/event-stream"
# Fields that change how an answer is delivered or attributed, not what it says.
_NOT_IN_CACHE_KEY = frozenset({"stream", "stream_options", "user"})


@dataclass(slots=True)
class Reply:
    """A complete answer: status, body and headers; ``completion`` is kept for replays."""

    status: int
    body: bytes
    media_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    completion: bytes | None = None


@dataclass(slots=True)
class StreamReply:
    """A streamed answer: events relayed as the provider sends them.

    Call :meth:`close` once the response is over, however it ended: a stream whose events
    were never read (the caller left before the first) still has a provider call to end.
    """

    events: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None


@dataclass(frozen=True, slots=True)
class _Target:
    deployment: Deployment
    upstream: Upstream
    breaker: str
    price: Price | None


@dataclass(slots=True)
class _Call:
    """One request on its way through: who, which group, what was reserved, since when."""

    tenant: str
    group: str
    body: dict[str, Any]
    stream: bool
    include_usage: bool
    lead: Lead | None
    cache_key: str | None = None
    #: The deployments the routing rules leave this call (None: every one of the group).
    allowed: list[str] | None = None
    reservation: Reservation | None = None
    guard: SloGuard | None = None
    started: float = 0.0
    settled: bool = False


class AiGateway:
    """The OpenAI-compatible gateway's machinery; :meth:`start` and :meth:`aclose` with the app."""

    def __init__(
        self,
        settings: GatewaySettings,
        kv: KV,
        *,
        breakers: BreakerRegistry | None = None,
        budgets: SpendBudgets | None = None,
        metrics: GatewayMetrics | None = None,
        policy: EgressPolicy | None = None,
        routing: Routing | None = None,
    ) -> None:
        self.settings = settings
        self.kv = kv
        # The managed routing rules: which models each tenant and API key may ask for.
        self.routing = routing
        # Not `breakers or ...`: an empty registry is falsy (it has a length).
        self.breakers = breakers if breakers is not None else BreakerRegistry()
        self.metrics = metrics
        # One limiter API for every limit (sluice.kv.limiter): request buckets under
        # gateway-rate:TENANT, token windows under gateway-tokens:TENANT:MINUTE.
        self.limiter = KVRateLimiter(kv, "gateway-")
        # The cache and the idempotency keys go where the app's KV is shared (Redis), so
        # every gateway process answers a repeat alike; else they stay in this process.
        shared = is_shared(kv)
        longest = max((sum(d.timeout_s for d in g) for g in settings.groups.values()), default=0)
        self.keys = IdempotencyKeys(
            settings.idempotency, kv if shared else None, lease_s=longest + 5.0
        )
        c = settings.cache
        self.cache = (
            CompletionCache(build_backend("gateway", c, kv, where="gateway.cache"), ttl_s=c.ttl_s)
            if c.enabled
            else None
        )
        self.budgets = budgets
        self.guards = (
            {g: SloGuard(f"gateway:{g}", settings.slo) for g in settings.groups}
            if settings.slo is not None
            else {}
        )
        self._upstreams: list[Upstream] = []
        self._groups: dict[str, tuple[_Target, ...]] = {}
        for group, deployments in settings.groups.items():
            targets = []
            for d in deployments:
                upstream = Upstream(d, settings.max_response_bytes, policy)
                self._upstreams.append(upstream)
                price = settings.prices.get(d.price_as)
                targets.append(_Target(d, upstream, f"gateway:{d.name}", price))
            self._groups[group] = tuple(targets)
        models = [
            {"id": g, "object": "model", "created": 0, "owned_by": "sluice"}
            for g in settings.groups
        ]
        self.models_body = orjson.dumps({"object": "list", "data": models})
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Open every deployment's connection pool, then freeze what start-up allocated."""
        for upstream in self._upstreams:
            await upstream.start()
        # A full collection of a started app (models, telemetry, routes: a few hundred
        # thousand objects) paused the event loop for ~50 ms, which every relayed call in
        # flight waited out. Objects alive now live as long as the process: moving them out of
        # the collector's sight leaves collections only the young objects to look at.
        gc.collect()
        gc.freeze()

    async def aclose(self) -> None:
        """Let settlements finish, close the pools, and hand the frozen objects back."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.keys.aclose()
        for upstream in self._upstreams:
            await upstream.aclose()
        gc.unfreeze()

    # the way through -------------------------------------------------------------------------
    async def complete(
        self,
        tenant: str,
        raw: bytes,
        idempotency_key: str | None = None,
        use_cache: bool = True,
        key: str = "",
    ) -> Reply | StreamReply:
        """Answer one ``POST /v1/chat/completions`` body for ``tenant`` (calling with the API
        key whose id is ``key``)."""
        idempotency_key = checked_idempotency_key(idempotency_key)  # before any work: 400
        body = parse_body(raw)
        group = body["model"]
        if group not in self._groups:
            known = ", ".join(self._groups)
            raise NotFoundError(f"the model {group!r} does not exist (known: {known})")
        allowed = None
        if self.routing is not None:  # ModelNotAllowedError: a 403 naming the rule
            targets = [(t.deployment.name, provider_of(t.deployment.base_url))
                       for t in self._groups[group]]  # fmt: skip
            allowed = await self.routing.gateway_targets(group, targets, tenant=tenant, key=key)
        await self._limit(tenant)
        stream = body.get("stream") is True
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        if idempotency_key is None:
            call = _Call(tenant, group, body, stream, include_usage, None, allowed=allowed)
            return await self._run(call, use_cache)
        claim = await self.keys.claim(tenant, idempotency_key, raw)
        if isinstance(claim, bytes):
            self._count(group, "replay")
            return _replay(claim, stream, include_usage, {"x-sluice-idempotent-replay": "true"})
        call = _Call(tenant, group, body, stream, include_usage, claim, allowed=allowed)
        try:
            reply = await self._run(call, use_cache)
        except BaseException:
            claim.abandon()
            raise
        if isinstance(reply, Reply):
            if reply.completion is not None:
                await claim.finish(reply.completion)
            else:
                claim.abandon()
        return reply  # a stream finishes or abandons the claim itself

    async def _limit(self, tenant: str) -> None:
        limits = self.settings.limits_for(tenant)
        if limits.requests_per_s:
            wait = await self.limiter.acquire(f"rate:{tenant}", limits.request_rate)
            if wait:
                raise RateLimitedError(
                    f"tenant {tenant!r} is over {limits.rate:g} requests/s", retry_after=wait
                )
        if limits.tokens_per_min:
            wait = await self.limiter.window_wait(f"tokens:{tenant}", limits.tokens_per_min)
            if wait:
                raise RateLimitedError(
                    f"tenant {tenant!r} used its {limits.tokens_per_min} tokens this minute",
                    retry_after=wait,
                )

    async def _run(self, call: _Call, use_cache: bool) -> Reply | StreamReply:
        if self.cache is not None and use_cache:
            fields = {k: v for k, v in call.body.items() if k not in _NOT_IN_CACHE_KEY}
            call.cache_key = stable_hash("gateway", fields)
            hit = await self.cache.get(call.cache_key)
            if hit is not None:
                self._count(call.group, "cache_hit")
                return _replay(hit, call.stream, call.include_usage, {"x-sluice-cache": "hit"})
        call.guard = self.guards.get(call.group)
        if call.guard is not None and not call.guard.admit():
            raise call.guard.refusal()
        if self.budgets is not None and self.budgets.limit(f"tenant:{call.tenant}") is not None:
            call.reservation = await self.budgets.reserve(
                f"tenant:{call.tenant}", self._most_it_can_cost(call)
            )
        if call.stream:
            # Ask for the usage chunk: the gateway charges tokens (the caller may not see it).
            call.body["stream_options"] = {**(call.body.get("stream_options") or {})}
            call.body["stream_options"]["include_usage"] = True
        call.started = time.perf_counter()
        try:
            if call.stream:
                response, target = await self._each_target(call, _open_stream)
            else:
                answer, target = await self._each_target(call, _complete)
        except BaseException as exc:
            if call.reservation is not None:
                await call.reservation.release()
            failed = isinstance(exc, AdmissionError) or (
                isinstance(exc, UpstreamError) and exc.retryable
            )
            if call.guard is not None and failed:
                call.guard.record((time.perf_counter() - call.started) * 1000, False)
            self._count(call.group, "failed" if failed else "refused_upstream")
            raise
        headers = {"x-sluice-deployment": target.deployment.name}
        if call.stream:
            assert isinstance(response, aiohttp.ClientResponse)
            return StreamReply(
                self._relay(call, target, response),
                headers,
                lambda: self._cut(call, response),
            )
        assert isinstance(answer, bytes)
        usage = _usage_of(answer)
        await self._settle(call, target, usage, ok=True)
        if call.cache_key is not None and self.cache is not None:
            await self.cache.put(call.cache_key, answer)
        return Reply(200, answer, JSON, headers, completion=answer)

    async def _each_target(self, call: _Call, send: Any) -> tuple[Any, _Target]:
        """Try the group's deployments in order; the first answer and who gave it."""
        last: UpstreamError | None = None
        wait = math.inf
        for target in self._groups[call.group]:
            if call.allowed is not None and target.deployment.name not in call.allowed:
                continue  # a provider the routing rules do not allow this tenant or key
            call.body["model"] = target.deployment.model
            data = orjson.dumps(call.body)
            try:
                async with self.breakers.get(target.breaker).guard():
                    return await send(target.upstream, data), target
            except BreakerOpenError as exc:
                wait = min(wait, exc.retry_after or 1.0)
            except UpstreamError as exc:
                if not exc.retryable:
                    raise  # the request is wrong: another provider would refuse it too
                log.warning("gateway: %s; trying the next deployment", exc)
                last = exc
        if last is not None:
            raise last
        raise AdmissionError(
            f"every deployment of {call.group!r} is unavailable (circuit breakers open)",
            retry_after=max(1.0, wait),
        )

    def _most_it_can_cost(self, call: _Call) -> float:
        """A reservation: the prompt's estimated tokens and the most output it may ask for."""
        asked = call.body.get("max_completion_tokens") or call.body.get("max_tokens")
        out = asked if isinstance(asked, int) and asked > 0 else self.settings.reserve_output_tokens
        # The same estimate every model call of a step is held at (sluice.models.estimate).
        usage = Usage(prompt_tokens(call.body["messages"]), out)
        return max(
            (t.price.cost(usage) for t in self._groups[call.group] if t.price is not None),
            default=0.0,
        )

    async def _relay(
        self, call: _Call, target: _Target, response: aiohttp.ClientResponse
    ) -> AsyncIterator[bytes]:
        """The provider's events as they come; settled once the stream has ended."""
        assembler = StreamAssembler(self.settings.max_response_bytes, keep_usage=call.include_usage)
        try:
            async for data in response.content.iter_any():
                for event in assembler.feed(data):
                    yield event
        except BaseException:
            self._cut(call, response)
            raise
        call.settled = True
        response.release()
        if not assembler.done:
            if call.lead is not None:
                call.lead.abandon()
            await self._settle_cut(call, provider_failed=True)
            return
        await self._settle(call, target, assembler.usage or {}, ok=True)
        if not assembler.rebuildable:
            if call.lead is not None:
                call.lead.abandon()
            return
        completion = orjson.dumps(assembler.completion())
        if call.cache_key is not None and self.cache is not None:
            await self.cache.put(call.cache_key, completion)
        if call.lead is not None:
            await call.lead.finish(completion)

    async def _settle(
        self, call: _Call, target: _Target, usage: Mapping[str, Any], *, ok: bool
    ) -> None:
        """Charge the call: spend, tokens of the minute, the SLO window, metrics."""
        latency_ms = (time.perf_counter() - call.started) * 1000
        tokens_in = _int(usage.get("prompt_tokens"))
        tokens_out = _int(usage.get("completion_tokens"))
        cost = 0.0 if target.price is None else target.price.cost(Usage(tokens_in, tokens_out))
        if call.reservation is not None:
            await call.reservation.commit(cost)
        limits = self.settings.limits_for(call.tenant)
        if limits.tokens_per_min and tokens_in + tokens_out:
            await self.limiter.charge(f"tokens:{call.tenant}", tokens_in + tokens_out)
        if call.guard is not None:
            call.guard.record(latency_ms, ok)
        if self.metrics is not None:
            self.metrics.answered(call.group, target.deployment.name, tokens_in, tokens_out, cost)

    def _cut(self, call: _Call, response: aiohttp.ClientResponse) -> None:
        """The caller left or the provider broke off: end the provider's stream now, and
        settle in the background (an await here could be cancelled again). Once only."""
        if call.settled:
            return
        call.settled = True
        response.close()
        if call.lead is not None:
            call.lead.abandon()
        self._background(self._settle_cut(call))

    async def _settle_cut(self, call: _Call, *, provider_failed: bool = False) -> None:
        # A cut stream was billed by the provider for what it sent: keep what was reserved.
        if call.reservation is not None:
            await call.reservation.commit(call.reservation.amount)
        if provider_failed and call.guard is not None:
            call.guard.record((time.perf_counter() - call.started) * 1000, False)
        self._count(call.group, "stream_cut")

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _count(self, group: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.outcome(group, outcome)


async def _complete(upstream: Upstream, data: bytes) -> bytes:
    return await upstream.complete(data)


async def _open_stream(upstream: Upstream, data: bytes) -> aiohttp.ClientResponse:
    return await upstream.open_stream(data)


def _replay(completion: bytes, stream: bool, include_usage: bool, headers: dict[str, str]) -> Reply:
    if not stream:
        return Reply(200, completion, JSON, headers, completion=completion)
    events = completion_events(orjson.loads(completion), include_usage=include_usage)
    return Reply(200, b"".join(events), SSE, headers, completion=completion)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage_of(answer: bytes) -> Mapping[str, Any]:
    try:
        usage = orjson.loads(answer).get("usage")
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    return usage if isinstance(usage, dict) else {}


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body, checked only as far as the gateway relies on it (400 otherwise)."""
    body = read_json(raw, SHAPE)  # a RequestError: OpenAI-shaped 400 on this route
    if not isinstance(body, dict):
        raise InvalidInputError("the body must be a JSON object")
    problems = []
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.append("model: required (the model group's name)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append("messages: required (a non-empty list)")
    elif not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        problems.append("messages: each message must be an object with a 'role'")
    if "stream" in body and not isinstance(body["stream"], bool | None):
        problems.append("stream: must be true or false")
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            problems.append(f"{key}: must be an integer")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        problems.append("stream_options: must be an object")
    if problems:
        raise InvalidInputError("invalid chat completion request: " + "; ".join(problems), problems)
    return body
