"""The ingress's HTTP API: webhooks and API runs in, run status out, health, status and the
OpenAPI document.

Endpoints are module-level functions (the Starlette style) that find the app and the
:class:`~sluice.ingress.intake.Ingress` on the Starlette application's state (set by
:func:`sluice.asgi.create_http_app`, which mounts these routes beside the AI gateway's and
``/metrics``). They only translate between HTTP and the ingress; every refusal is an
``application/problem+json`` document carrying the correlation id, which is also returned in
the ``x-correlation-id`` header of every response.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

import orjson
from opentelemetry.trace import Span, Status, StatusCode
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sluice.app import SluiceApp
from sluice.errors import (
    AdmissionError,
    AuthError,
    Forbidden,
    IdempotencyConflictError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    SluiceError,
)
from sluice.ids import new_event_id
from sluice.ingress.intake import Ingress
from sluice.ingress.limits import (
    Limits,
    RequestError,
    check_single,
    checked_idempotency_key,
    read_json,
)
from sluice.ingress.problems import problem
from sluice.ingress.router_errors import CLIENT_CLOSED
from sluice.ingress.status import status_document
from sluice.store.base import EventRecord, EventState, Receipt
from sluice.telemetry.metrics import Metrics, route_label
from sluice.telemetry.tracing import Telemetry, current_trace_id

MAX_WAIT_S = 30.0
_TITLES = {400: "Bad Request", 413: "Payload Too Complex", 415: "Unsupported Media Type"}
_CID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def run_view(record: EventRecord) -> dict[str, Any]:
    """The public view of an event: status, timings per step, result or error."""
    view: dict[str, Any] = {
        "event_id": record.id,
        "workflow": record.workflow,
        "version": record.version,
        "tenant": record.tenant,
        "status": record.state.value,
        "created_at": record.created_at,
        "finished_at": record.finished_at,
        "steps": [
            {
                "step": s.name,
                "attempts": s.attempts,
                "queued_ms": round((s.started_at - s.queued_at) * 1000, 3),
                "run_ms": round((s.finished_at - s.started_at) * 1000, 3),
            }
            for s in record.steps
        ],
    }
    if record.state is EventState.DONE and record.result is not None:
        view["result"] = orjson.loads(record.result)
    if record.error:
        view["error"] = record.error
    return view


def _last_header(scope: Scope, name: bytes) -> str:
    """The last value of header ``name`` (as a dict of the headers would hold it), or ""."""
    found = b""
    for key, value in scope["headers"]:
        if key == name:
            found = value
    return found.decode("latin-1")


class CorrelationMiddleware:
    """Gives every request a correlation id, and counts and times every answer by route
    template and status.

    With tracing on, each API request (``/v1/...``) is a server span, child of the caller's
    ``traceparent`` when it sends a valid one, and the correlation id *is* its trace id: the
    id in the response header, in problem documents and in log lines finds the whole trace.
    Otherwise the caller's ``x-correlation-id`` is kept when sane, or a new one is made.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, telemetry: Telemetry | None = None) -> None:
        self.app = app
        self.metrics = metrics
        # Children of the two metrics by label values (route templates and statuses: a small,
        # bounded set), resolved once: ``labels()`` takes a lock and builds a key every call.
        self._counts: dict[tuple[str, int], Any] = {}
        self._timers: dict[str, Any] = {}
        self.telemetry = telemetry if telemetry is not None and telemetry.enabled else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_label(scope["path"])
        if self.telemetry is None or not scope["path"].startswith("/v1/"):
            given = _last_header(scope, b"x-correlation-id")
            await self._serve(scope, receive, send, route, given if _CID.match(given) else None)
            return
        traceparent = _last_header(scope, b"traceparent")
        with self.telemetry.server_span(scope["method"], route, traceparent or None) as span:
            await self._serve(scope, receive, send, route, current_trace_id(), span)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, route: str, cid: str | None,
        span: Span | None = None,
    ) -> None:  # fmt: skip
        cid = cid or new_event_id()
        scope.setdefault("state", {})["cid"] = cid
        header = (b"x-correlation-id", cid.encode())
        started = time.perf_counter()
        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                message["headers"] = [*message.get("headers", []), header]
                status = message["status"]
                self._count(route, status)
                timer = self._timers.get(route)
                if timer is None:
                    timer = self._timers[route] = self.metrics.request_seconds.labels(route)
                timer.observe(time.perf_counter() - started)
                if span is not None and span.is_recording():
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR, str(status)))
            await send(message)

        await self.app(scope, receive, send_with_id)
        if not answered:  # the client left before an answer was due (the chat route's way)
            self._count(route, CLIENT_CLOSED)

    def _count(self, route: str, status: int) -> None:
        counter = self._counts.get((route, status))
        if counter is None:
            counter = self._counts[route, status] = self.metrics.requests.labels(route, str(status))
        counter.inc()


def refusal(exc: SluiceError, cid: str) -> Response:
    """The problem document for a refusal raised by the ingress."""
    if isinstance(exc, RateLimitedError):
        retry = {"Retry-After": str(max(1, round(exc.retry_after + 0.499)))}
        return problem(
            429, "rate-limited", "Too Many Requests", str(exc), retry, correlation_id=cid
        )
    if isinstance(exc, AdmissionError):
        retry = {"Retry-After": str(max(1, round(exc.retry_after)))}
        return problem(503, "overloaded", "Service Overloaded", str(exc), retry, correlation_id=cid)
    if isinstance(exc, AuthError):
        auth = {"WWW-Authenticate": "Bearer"}
        return problem(401, "unauthorized", "Unauthorized", str(exc), auth, correlation_id=cid)
    if isinstance(exc, Forbidden):
        return problem(403, "forbidden", "Forbidden", str(exc), correlation_id=cid)
    if isinstance(exc, IdempotencyConflictError):
        return problem(409, "idempotency-conflict", "Conflict", str(exc), correlation_id=cid)
    if isinstance(exc, RequestError):  # a rule of the API itself, before the workflow's schema
        title = _TITLES.get(exc.status, "Bad Request")
        return problem(exc.status, exc.kind, title, str(exc), correlation_id=cid)
    if isinstance(exc, InvalidInputError):
        return problem(422, "invalid-input", "Invalid Input", str(exc).splitlines()[0],
                       errors=exc.problems, correlation_id=cid)  # fmt: skip
    if isinstance(exc, NotFoundError):
        return problem(404, "not-found", "Not Found", str(exc), correlation_id=cid)
    return problem(500, "internal", "Internal Error", "the request failed", correlation_id=cid)


def wait_seconds(raw: str | None) -> float:
    """``?wait=``: seconds from 0 to :data:`MAX_WAIT_S` (0 without the parameter)."""
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not 0 <= wait <= MAX_WAIT_S:  # NaN fails both comparisons
        raise RequestError(
            f"wait: a number of seconds from 0 to {MAX_WAIT_S:g}, not {raw[:20]!r}",
            kind="bad-parameter",
        )
    return wait


def _parts(request: Request) -> tuple[SluiceApp, Ingress]:
    state = request.app.state
    return state.sluice, state.ingress


def _too_large(limits: Limits, cid: str) -> Response:
    return problem(413, "payload-too-large", "Payload Too Large",
                   f"the body exceeds {limits.max_body_bytes} bytes",
                   correlation_id=cid)  # fmt: skip


async def read_body(request: Request, limits: Limits, cid: str) -> bytes | Response:
    """The request's JSON body within ``limits.max_body_bytes``, or the problem refusing it
    (415 for another content type, 413 past the size, declared or sent)."""
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        return problem(415, "unsupported-media-type", "Unsupported Media Type",
                       "send application/json", correlation_id=cid)  # fmt: skip
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
        return _too_large(limits, cid)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.max_body_bytes:
            return _too_large(limits, cid)
    return bytes(body)


def receipt_response(receipt: Receipt) -> Response:
    """202 with the receipt and the run's location."""
    body: dict[str, Any] = {"event_id": receipt.event_id, "status": receipt.status}
    if receipt.duplicate:
        body["duplicate"] = True
    return _json(body, 202, {"Location": f"/v1/runs/{receipt.event_id}"})


async def hook(scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /v1/hooks/{source}``: a signed webhook delivery.

    A bare ASGI endpoint (the chat route's way): webhooks are the busiest way in, and request
    and response objects were a tenth of their time in the server. The answers are the ones
    :func:`read_body`, :func:`_refusal` and :func:`receipt_response` give.
    """
    ingress: Ingress = scope["app"].state.ingress
    cid = scope["state"]["cid"]
    raw = scope["headers"]
    try:
        check_single(raw)
    except SluiceError as exc:
        await refusal(exc, cid)(scope, receive, send)
        return
    # ASGI header names are lower case; the first of a repeated header wins, as in Starlette.
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(raw)}
    body = await _read_raw_body(headers, receive, ingress.settings.limits, cid)
    if isinstance(body, Response):
        await body(scope, receive, send)
        return
    try:
        receipt = await ingress.webhook(scope["path_params"]["source"], headers, body)
    except SluiceError as exc:
        await refusal(exc, cid)(scope, receive, send)
        return
    answer: dict[str, Any] = {"event_id": receipt.event_id, "status": receipt.status}
    if receipt.duplicate:
        answer["duplicate"] = True
    payload = orjson.dumps(answer)
    await send({"type": "http.response.start", "status": 202, "headers": [
        (b"location", b"/v1/runs/" + receipt.event_id.encode()),
        (b"content-length", str(len(payload)).encode()),
        (b"content-type", b"application/json"),
    ]})  # fmt: skip
    await send({"type": "http.response.body", "body": payload})


async def _read_raw_body(
    headers: dict[str, str], receive: Receive, limits: Limits, cid: str
) -> bytes | Response:
    """:func:`read_body` for a bare ASGI endpoint."""
    ctype = headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        return problem(415, "unsupported-media-type", "Unsupported Media Type",
                       "send application/json", correlation_id=cid)  # fmt: skip
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
        return _too_large(limits, cid)
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left (Starlette's own signal)
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if not more and not body:  # the whole body in one message: no copy
            return chunk if len(chunk) <= limits.max_body_bytes else _too_large(limits, cid)
        body += chunk
        if len(body) > limits.max_body_bytes:
            return _too_large(limits, cid)
        if not more:
            return bytes(body)


class _Bare:
    """Marks a function as a bare ASGI endpoint for a Starlette ``Route`` (a plain function
    would be wrapped to take a request and return a response)."""

    def __init__(self, endpoint: ASGIApp) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.endpoint(scope, receive, send)


async def start_run(request: Request) -> Response:
    """``POST /v1/workflows/{name}/runs``: an API run, answered at once or after ``?wait=``."""
    app, ingress = _parts(request)
    cid = request.state.cid
    try:
        check_single(request.headers.raw)
        key = await ingress.auth.authenticate(request.headers.get("authorization"))
        wait_s = wait_seconds(request.query_params.get("wait"))
        idempotency = checked_idempotency_key(request.headers.get("idempotency-key"))
    except SluiceError as exc:
        return refusal(exc, cid)
    body = await read_body(request, ingress.settings.limits, cid)
    if isinstance(body, Response):
        return body
    try:
        data = read_json(body, ingress.settings.limits)
        flag = request.headers.get("x-sluice-flag")  # bounded: declared flags or "other"
        receipt = await ingress.api_run(
            key.tenant, request.path_params["name"], body, data, idempotency,
            None if flag is None else app.metrics.flag(flag),
        )  # fmt: skip
    except SluiceError as exc:
        return refusal(exc, cid)
    if wait_s > 0 and receipt.status == "accepted":
        record = await app.runtime.wait(receipt.event_id, wait_s)
        if record.state is not EventState.ACCEPTED:
            return _json(run_view(record), 200, {"Location": f"/v1/runs/{record.id}"})
    return receipt_response(receipt)


async def get_run(request: Request) -> Response:
    """``GET /v1/runs/{event_id}``: a run of the caller's tenant (a quarantined delivery's id
    leads to the event its replay became)."""
    app, ingress = _parts(request)
    cid = request.state.cid
    asked = request.path_params["event_id"]
    try:
        check_single(request.headers.raw)
        key = await ingress.auth.authenticate(request.headers.get("authorization"))
        try:
            record = await app.store.get_event(asked)
        except NotFoundError:
            replayed = await app.store.replayed_as(asked)
            if replayed is None:
                raise
            record = await app.store.get_event(replayed)
        if record.tenant != key.tenant:  # another tenant's run does not exist for you
            raise NotFoundError(f"no event {asked!r}")
    except SluiceError as exc:
        return refusal(exc, cid)
    if record.id != asked:
        view = {**run_view(record), "replay_of": asked}
        return _json(view, 200, {"Content-Location": f"/v1/runs/{record.id}"})
    return _json(run_view(record))


async def healthz(request: Request) -> Response:
    """``GET /healthz``: the process answers."""
    return _json({"status": "ok"})


async def readyz(request: Request) -> Response:
    """``GET /readyz``: the app is started (503 while starting or stopping)."""
    app, _ = _parts(request)
    if not app.started:
        return problem(503, "not-ready", "Not Ready", "the app is starting or stopping",
                       correlation_id=request.state.cid)  # fmt: skip
    return _json({"status": "ready", "pools": app.runtime.stats()})


async def status(request: Request) -> Response:
    """``GET /v1/status``: the deployment for an operator key, a tenant-safe share otherwise."""
    app, ingress = _parts(request)
    try:
        check_single(request.headers.raw)
        key = await ingress.auth.authenticate(request.headers.get("authorization"))
    except SluiceError as exc:
        return refusal(exc, request.state.cid)
    body = await status_document(key, app.services, app.runtime.stats())
    # Snapshots are frozen dataclasses holding read-only mappings: render those as dicts.
    return Response(orjson.dumps(body, default=dict), media_type="application/json")


async def openapi(request: Request) -> Response:
    """``GET /openapi.json``: every route and every status it answers."""
    return _json(request.app.state.openapi)


#: The ingress's routes, in the order they are matched.
ROUTES = [
    Route("/v1/hooks/{source}", _Bare(hook), methods=["POST"]),
    Route("/v1/workflows/{name}/runs", start_run, methods=["POST"]),
    Route("/v1/runs/{event_id}", get_run, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/v1/status", status, methods=["GET"]),
]
#: Routes after ``/metrics`` in the app; the governed ones (index items, ``/v1/admin/...``)
#: are :data:`sluice.ingress.admin.ROUTES`.
LATE_ROUTES = [
    Route("/openapi.json", openapi, methods=["GET"]),
]
