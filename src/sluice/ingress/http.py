"""The HTTP API of the runtime: start runs, read them back, health.

``POST /v1/workflows/{name}/runs`` accepts a JSON object as the workflow's input and answers
202 with ``{"event_id", "status"}`` once the event is durable; ``?wait=SECONDS`` (at most
:data:`MAX_WAIT_S`) answers 200 with the result instead when it is ready in time.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.app import SluiceApp
from sluice.errors import AdmissionError, InvalidInputError, NotFoundError
from sluice.ingress.problems import problem
from sluice.store.base import EventRecord, EventState

MAX_BODY_BYTES = 1 << 20
MAX_WAIT_S = 30.0


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


async def _read_json(request: Request) -> Any | Response:
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        return problem(415, "unsupported-media-type", "Unsupported Media Type",
                       "send the input as application/json")  # fmt: skip
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return problem(413, "payload-too-large", "Payload Too Large",
                           f"the body exceeds {MAX_BODY_BYTES} bytes")  # fmt: skip
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return problem(400, "malformed-json", "Malformed JSON", str(exc))


def create_http_app(app: SluiceApp) -> Starlette:
    """The ASGI application serving ``app``; its lifespan starts and stops ``app``."""

    async def start_run(request: Request) -> Response:
        name = request.path_params["name"]
        data = await _read_json(request)
        if isinstance(data, Response):
            return data
        try:
            wait_s = min(float(request.query_params.get("wait", 0)), MAX_WAIT_S)
        except ValueError:
            return problem(400, "bad-parameter", "Bad Parameter", "wait must be a number")
        try:
            event_id = await app.runtime.submit(name, data)
        except NotFoundError as exc:
            return problem(404, "unknown-workflow", "Unknown Workflow", str(exc))
        except InvalidInputError as exc:
            return problem(422, "invalid-input", "Invalid Input", str(exc).splitlines()[0],
                           errors=exc.problems)  # fmt: skip
        except AdmissionError as exc:
            retry = {"Retry-After": str(max(1, round(exc.retry_after)))}
            return problem(503, "overloaded", "Service Overloaded", str(exc), headers=retry)
        location = {"Location": f"/v1/runs/{event_id}"}
        if wait_s > 0:
            record = await app.runtime.wait(event_id, wait_s)
            if record.state is not EventState.ACCEPTED:
                return _json(run_view(record), 200, location)
        return _json({"event_id": event_id, "status": "accepted"}, 202, location)

    async def get_run(request: Request) -> Response:
        try:
            record = await app.store.get_event(request.path_params["event_id"])
        except NotFoundError as exc:
            return problem(404, "unknown-run", "Unknown Run", str(exc))
        return _json(run_view(record))

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if not app.started:
            return problem(503, "not-ready", "Not Ready", "the app is starting or stopping")
        return _json({"status": "ready", "pools": app.runtime.stats()})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await app.start()
        try:
            yield
        finally:
            await app.stop()

    return Starlette(
        routes=[
            Route("/v1/workflows/{name}/runs", start_run, methods=["POST"]),
            Route("/v1/runs/{event_id}", get_run, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
