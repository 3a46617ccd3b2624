"""The OpenAI-compatible routes: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Errors on these routes are OpenAI-shaped (``{"error": {"message", "type", "code"}}``), since
OpenAI clients parse that, and carry the correlation id in ``x-correlation-id`` like every
answer of the app:

======================================  ======  ===========================================
refusal                                 status  ``type`` / ``code``
======================================  ======  ===========================================
malformed body or headers (below)       400     invalid_request_error / invalid_request
missing or bad API key                  401     invalid_request_error / invalid_api_key
unknown model group                     404     invalid_request_error / model_not_found
model refused by the routing rules      403     permission_error / model_not_allowed
idempotency key reused, other body      409     invalid_request_error / idempotency_conflict
body over ``max_body_bytes``            413     invalid_request_error / request_too_large
body not ``application/json``           415     invalid_request_error / unsupported_media_type
request or token rate limit             429     rate_limit_error / rate_limit_exceeded
spend budget used up                    429     insufficient_quota / insufficient_quota
SLO guard closed, all breakers open     503     server_error / service_unavailable
every provider failed                   502     upstream_error / (the provider's status)
======================================  ======  ===========================================

A malformed request is a body that is not JSON, JSON nested deeper than the ingress's
32 levels (:mod:`sluice.ingress.limits`, the same limit as every route's), a repeated
``Authorization`` or ``Idempotency-Key`` header, or an ``Idempotency-Key`` that is blank or
longer than 255 characters.

429 and 503 carry ``Retry-After``. An exhausted budget is a 429 as OpenAI answers an exhausted
quota, with ``x-should-retry: false`` so that the official clients do not retry until the
window resets. A model the managed routing rules (:mod:`sluice.governance.routing`) do not
allow the tenant or the API key is a 403 ``application/problem+json`` document (``type``
``.../model-not-allowed``, ``rule``: the refusing rule's path) that also carries the OpenAI
``error`` member, so both kinds of client read it. A provider's own 4xx (a request it judges
invalid) is relayed as it is.
"""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sluice.ai_gateway.proxy import JSON, SSE, AiGateway, Reply, StreamReply
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
from sluice.governance.routing import ModelNotAllowedError
from sluice.ingress.apikeys import ApiKeyAuth
from sluice.ingress.limits import RequestError, check_single
from sluice.ingress.problems import openai_error, problem
from sluice.outbound.upstream import UpstreamError
from sluice.reliability.spend import BudgetExhaustedError


def _retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def error_response(exc: SluiceError) -> Response:
    """The OpenAI-shaped answer to a refusal raised on the gateway's way through."""
    message = str(exc).splitlines()[0]
    if isinstance(exc, ModelNotAllowedError):
        # A problem document that OpenAI clients can read too (they look for "error").
        error = {"message": message, "type": "permission_error", "param": None,
                 "code": "model_not_allowed"}  # fmt: skip
        return problem(403, "model-not-allowed", "Model not allowed", message,
                       rule=exc.rule, error=error)  # fmt: skip
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
    if isinstance(exc, RequestError) and exc.status == 415:
        return openai_error(415, message, "invalid_request_error", "unsupported_media_type")
    if isinstance(exc, InvalidInputError):  # a too complex body too: OpenAI answers 400
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


class ChatCompletions:
    """``POST /v1/chat/completions`` as a bare ASGI endpoint.

    The hot path of the gateway: it reads the few headers it needs and the bounded body
    straight from the ASGI messages and answers with two messages, without building request
    and response objects; refusals and streams go through Starlette responses.
    """

    def __init__(self, ai: AiGateway, auth: ApiKeyAuth) -> None:
        self.ai = ai
        self.auth = auth
        self.limit = ai.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request."""
        headers = dict(scope["headers"])
        try:
            check_single(scope["headers"])
            authorization = headers.get(b"authorization")
            key = await self.auth.authenticate(
                None if authorization is None else authorization.decode("latin-1")
            )
            ctype = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
            if ctype != b"application/json":
                raise RequestError(
                    "send the body as application/json (Content-Type)",
                    status=415, kind="unsupported-media-type",
                )  # fmt: skip
            raw = await self._body(headers.get(b"content-length"), receive)
            idempotency = headers.get(b"idempotency-key")
            reply = await self.ai.complete(
                key.tenant,
                raw,
                None if idempotency is None else idempotency.decode("latin-1"),
                use_cache=headers.get(b"x-sluice-cache") != b"bypass",
                key=key.id,
            )
        except SluiceError as exc:
            await error_response(exc)(scope, receive, send)
            return
        except _GoneError:
            return
        except _TooLargeError:
            too_large = openai_error(
                413, f"the body exceeds {self.limit} bytes", "invalid_request_error",
                "request_too_large",
            )  # fmt: skip
            await too_large(scope, receive, send)
            return
        if not isinstance(reply, Reply):
            try:
                await _stream_response(reply)(scope, receive, send)
            finally:
                reply.close()
            return
        out = [(b"content-type", reply.media_type.encode()),
               (b"content-length", str(len(reply.body)).encode())]  # fmt: skip
        out += [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": out})
        await send({"type": "http.response.body", "body": reply.body})

    async def _body(self, declared: bytes | None, receive: Receive) -> bytes:
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            raise _TooLargeError
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _GoneError  # http.disconnect: nobody is left to answer
            chunk: bytes = message.get("body", b"")
            body += chunk
            if len(body) > self.limit:
                raise _TooLargeError
            if not message.get("more_body", False):
                return body


def _stream_response(reply: StreamReply) -> Response:
    headers = {**reply.headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(reply.events, 200, headers, media_type=SSE)


def build_routes(ai: AiGateway, auth: ApiKeyAuth) -> list[Route]:
    """The two routes of ``ai``, authenticating with the app's API keys."""

    async def models(request: Request) -> Response:
        try:
            check_single(request.headers.raw)
            await auth.authenticate(request.headers.get("authorization"))
        except SluiceError as exc:
            return error_response(exc)
        return Response(ai.models_body, media_type=JSON)

    return [
        Route("/v1/chat/completions", ChatCompletions(ai, auth), methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ]


class _TooLargeError(Exception):
    """The body outgrew the limit while being read."""


class _GoneError(Exception):
    """The caller went away while sending the body (nobody will read the answer)."""


def gateway_routes(app: SluiceApp, auth: ApiKeyAuth) -> list[Route]:
    """The gateway's routes when the app config has a ``gateway:`` section, else none.

    The gateway is one of the app's services (built with them, so its pools open and close
    with the app, on the app's breaker registry and spend budgets); this only mounts it.
    """
    ai = app.services.gateway.ai_gateway
    return build_routes(ai, auth) if isinstance(ai, AiGateway) else []
