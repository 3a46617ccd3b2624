"""The OpenAI-compatible routes: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Errors on these routes are OpenAI-shaped (``{"error": {"message", "type", "code"}}``), since
OpenAI clients parse that, and carry the correlation id in ``x-correlation-id`` like every
answer of the app:

======================================  ======  ===========================================
refusal                                 status  ``type`` / ``code``
======================================  ======  ===========================================
malformed body                          400     invalid_request_error / invalid_request
missing or bad API key                  401     invalid_request_error / invalid_api_key
unknown model group                     404     invalid_request_error / model_not_found
idempotency key reused, other body      409     invalid_request_error / idempotency_conflict
body over ``max_body_bytes``            413     invalid_request_error / request_too_large
request or token rate limit             429     rate_limit_error / rate_limit_exceeded
spend budget used up                    429     insufficient_quota / insufficient_quota
SLO guard closed, all breakers open     503     server_error / service_unavailable
every provider failed                   502     upstream_error / (the provider's status)
======================================  ======  ===========================================

429 and 503 carry ``Retry-After``. An exhausted budget is a 429 as OpenAI answers an exhausted
quota, with ``x-should-retry: false`` so that the official clients do not retry until the
window resets. A provider's own 4xx (a request it judges invalid) is relayed as it is.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from sluice.app import SluiceApp
from sluice.errors import (
    AdmissionError,
    AuthError,
    IdempotencyConflictError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    SluiceError,
)
from sluice.gateway.config import parse_gateway
from sluice.gateway.metrics import GatewayMetrics
from sluice.gateway.proxy import JSON, SSE, AiGateway, Reply
from sluice.gateway.upstream import UpstreamError
from sluice.ingress.apikeys import ApiKeyAuth
from sluice.reliability.breaker import BreakerRegistry
from sluice.reliability.spend import BudgetExhaustedError


def openai_error(
    status: int, message: str, kind: str, code: str, headers: dict[str, str] | None = None
) -> Response:
    """An error response in the OpenAI shape."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Response(orjson.dumps(body), status, headers, media_type=JSON)


def _retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def error_response(exc: SluiceError) -> Response:
    """The OpenAI-shaped answer to a refusal raised on the gateway's way through."""
    message = str(exc).splitlines()[0]
    if isinstance(exc, BudgetExhaustedError):
        headers = {"Retry-After": _retry_after(exc.retry_after), "x-should-retry": "false"}
        return openai_error(429, message, "insufficient_quota", "insufficient_quota", headers)
    if isinstance(exc, RateLimitedError):
        headers = {"Retry-After": _retry_after(exc.retry_after)}
        return openai_error(429, message, "rate_limit_error", "rate_limit_exceeded", headers)
    if isinstance(exc, AdmissionError):
        headers = {"Retry-After": _retry_after(exc.retry_after)}
        return openai_error(503, message, "server_error", "service_unavailable", headers)
    if isinstance(exc, AuthError):
        return openai_error(401, message, "invalid_request_error", "invalid_api_key")
    if isinstance(exc, InvalidInputError):
        return openai_error(400, message, "invalid_request_error", "invalid_request")
    if isinstance(exc, NotFoundError):
        return openai_error(404, message, "invalid_request_error", "model_not_found")
    if isinstance(exc, IdempotencyConflictError):
        return openai_error(409, message, "invalid_request_error", "idempotency_conflict")
    if isinstance(exc, UpstreamError):
        if not exc.retryable and exc.body:
            # The provider judged the request itself: its own words go back.
            return Response(exc.body, exc.status, media_type=JSON)
        if exc.status == 429:
            headers = {"Retry-After": _retry_after(exc.retry_after or 1.0)}
            return openai_error(429, message, "rate_limit_error", "upstream_rate_limited", headers)
        return openai_error(
            502, message, "upstream_error", f"upstream_{exc.status or 'unreachable'}"
        )
    return openai_error(500, "the request failed", "server_error", "internal_error")


def _send(reply: Any) -> Response:
    if isinstance(reply, Reply):
        return Response(reply.body, reply.status, reply.headers, media_type=reply.media_type)
    headers = {**reply.headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(reply.events, 200, headers, media_type=SSE)


def build_routes(ai: AiGateway, auth: ApiKeyAuth) -> list[Route]:
    """The two routes of ``ai``, authenticating with the app's API keys."""
    limit = ai.settings.max_body_bytes

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _TooLargeError
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _TooLargeError
        return bytes(body)

    async def chat_completions(request: Request) -> Response:
        headers = request.headers
        try:
            key = await auth.authenticate(headers.get("authorization"))
            raw = await read_body(request)
            reply = await ai.complete(
                key.tenant,
                raw,
                headers.get("idempotency-key"),
                use_cache=headers.get("x-sluice-cache") != "bypass",
            )
        except SluiceError as exc:
            return error_response(exc)
        except _TooLargeError:
            return openai_error(
                413, f"the body exceeds {limit} bytes", "invalid_request_error",
                "request_too_large",
            )  # fmt: skip
        return _send(reply)

    async def models(request: Request) -> Response:
        try:
            await auth.authenticate(request.headers.get("authorization"))
        except SluiceError as exc:
            return error_response(exc)
        return Response(ai.models_body, media_type=JSON)

    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ]


class _TooLargeError(Exception):
    """The body outgrew the limit while being read."""


def gateway_routes(app: SluiceApp, auth: ApiKeyAuth) -> list[Route]:
    """The gateway's routes when the app config has a ``gateway:`` section, else none.

    The gateway joins the app's services, so its pools open and close with the app; its
    breakers are the app's ``breakers`` service when there is one (one view in /v1/status).
    """
    raw = app.settings.extra.get("gateway")
    if raw is None:
        return []
    settings = parse_gateway(raw, app.settings.extra.get("prices"))
    breakers = app.services.get("breakers")
    if not isinstance(breakers, BreakerRegistry):
        breakers = app.services["breakers"] = BreakerRegistry(settings.breaker)
    ai = AiGateway(
        settings, app.kv, breakers=breakers, metrics=GatewayMetrics(app.metrics.registry)
    )
    app.services["ai_gateway"] = ai
    if ai.cache is not None:
        app.services["gateway_cache"] = ai.cache
    return build_routes(ai, auth)
