"""Refusals of the router and the framework, in the API's own shapes.

Starlette answers unknown routes, wrong methods and unexpected errors in ``text/plain``; the
handlers here make them RFC 9457 problem documents (OpenAI-shaped on the AI gateway's paths,
since OpenAI clients parse that) carrying the correlation id like every other refusal. A
client that goes away while sending its body is not a server error: it is counted as ``499``
(client closed request) and logged at INFO, without a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from sluice.ingress.problems import openai_error, problem

#: The status counted for a request whose client left before it was answered (nginx's).
CLIENT_CLOSED = 499
#: Paths answered in the OpenAI error shape.
OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")

log = logging.getLogger("sluice.http")


def _cid(request: Request) -> str | None:
    cid = request.scope.get("state", {}).get("cid")
    return cid if isinstance(cid, str) else None


def _openai_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in OPENAI_PATHS)


def http_error(request: Request, exc: Exception) -> Response:
    """A router refusal (404 unknown route, 405 wrong method with ``Allow``)."""
    assert isinstance(exc, HTTPException)  # registered for HTTPException only
    status = exc.status_code
    headers = dict(exc.headers or {})
    method, path = request.method, request.url.path
    if status == HTTPStatus.NOT_FOUND:
        kind, detail = "not-found", "no such route"
    elif status == HTTPStatus.METHOD_NOT_ALLOWED:
        kind = "method-not-allowed"
        allowed = next((v for k, v in headers.items() if k.lower() == "allow"), "none")
        detail = f"{method} is not allowed here; allowed: {allowed}"
    else:
        kind, detail = "http-error", str(exc.detail)
    if _openai_path(path):
        code = kind.replace("-", "_")
        return openai_error(status, detail, "invalid_request_error", code, headers)
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    return problem(status, kind, title, detail, headers, correlation_id=_cid(request))


def client_closed(request: Request, exc: Exception) -> Response:
    """The client left mid-body: nobody reads this answer, but metrics count it as 499."""
    log.info("client closed the request before sending its body",
             extra={"correlation_id": _cid(request)})  # fmt: skip
    return Response(status_code=CLIENT_CLOSED)


def server_error(request: Request, exc: Exception) -> Response:
    """An unexpected error (logged with its traceback by the server): a 500 document."""
    if _openai_path(request.url.path):
        return openai_error(500, "the request failed", "server_error", "internal_error")
    return problem(500, "internal", "Internal Error", "the request failed",
                   correlation_id=_cid(request))  # fmt: skip


def exception_handlers() -> Mapping[Any, Any]:
    """The handlers to give ``Starlette(exception_handlers=...)``."""
    return {HTTPException: http_error, ClientDisconnect: client_closed, Exception: server_error}
