"""The OpenAPI 3.1 document of the HTTP API, built from the app's workflows and sources.

Each workflow's input schema is the request body of its runs endpoint, so clients and
property-based testers see exactly what the gateway validates. Every route the app serves is
here, with every status it may answer: the AI gateway's two routes (OpenAI-shaped errors)
when the app has a ``gateway:`` section.
"""

from __future__ import annotations

import re
from typing import Any

from sluice.ingress.admin import ADMIN_ROUTES
from sluice.ingress.index_deltas import MAX_ITEMS
from sluice.ingress.limits import MAX_IDEMPOTENCY_KEY_CHARS
from sluice.ingress.settings import IngressSettings
from sluice.workflow.registry import WorkflowRegistry

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_OPENAI_ERROR = {"$ref": "#/components/schemas/OpenAIError"}
_SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}]
_IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Repeats with the same key and body get the first answer; once per request",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_IDEMPOTENCY_KEY_CHARS,
        "pattern": "\\S",
    },
}
_WEBHOOK_HEADERS: list[dict[str, Any]] = [
    {"name": "webhook-id", "in": "header", "required": True, "schema": {"type": "string"}},
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "description": "Seconds since the epoch: ASCII digits, no leading zero",
        "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,11}$"},
    },
    {"name": "webhook-signature", "in": "header", "required": True, "schema": {"type": "string"}},
]
_TEXT = {"type": "string", "minLength": 1}
_DELTA: dict[str, Any] = {  # sluice.ingress.index_deltas
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "items": {
            "type": "array",
            "maxItems": MAX_ITEMS,
            "items": {
                "type": "object",
                "required": ["id", "text", "intent", "resolution"],
                "properties": dict.fromkeys(("id", "text", "intent", "resolution"), _TEXT),
            },
        },
        "delete": {"type": "array", "maxItems": MAX_ITEMS, "items": _TEXT},
    },
}
_CHAT: dict[
    str, Any
] = {  # what the gateway relies on (sluice.ai_gateway.proxy.parse_body); the rest is relayed
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": _TEXT,
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role"],
                "properties": {"role": {"type": "string"}},
            },
        },
        "stream": {"type": ["boolean", "null"]},
        "stream_options": {"type": ["object", "null"]},
        "max_tokens": {"type": ["integer", "null"]},
        "max_completion_tokens": {"type": ["integer", "null"]},
    },
}


def _responses(*codes: int, ok: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ok is not None:
        out.update(ok)
    for code in codes:
        out[str(code)] = {
            "description": "refused",
            "content": {"application/problem+json": {"schema": _PROBLEM}},
        }
    return out


def _openai_responses(*codes: int, ok: dict[str, Any]) -> dict[str, Any]:
    out = dict(ok)
    for code in codes:
        out[str(code)] = {
            "description": "refused (OpenAI-shaped)",
            "content": {"application/json": {"schema": _OPENAI_ERROR}},
        }
    return out


# Answered by the server itself (``ingress/server.py``) before a request reaches its route,
# on every route alike and always as problem documents, the AI gateway's routes included.
_SERVER_REFUSALS = {
    400: "a malformed request line, header or framing",
    408: "the request line and headers, or the body, did not arrive in time",
    429: "too many connections from this client address",
    431: "request line and headers too large, or too many headers",
    503: "too many requests in flight; see Retry-After",
}


def _add_server_refusals(paths: dict[str, Any]) -> None:
    """Document the server's own refusals on every operation, beside the route's own."""
    content = {"application/problem+json": {"schema": _PROBLEM}}
    for operations in paths.values():
        for operation in operations.values():
            responses = operation["responses"]
            for code, why in _SERVER_REFUSALS.items():
                answer = responses.setdefault(str(code), {"description": f"refused: {why}"})
                answer.setdefault("content", {}).update(content)


_SEQ = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_ADMIN_REFUSALS = (400, 401, 403, 404, 409, 413, 415, 422)
_ADMIN_OK = {"200": {"description": "done"}, "201": {"description": "created"}}


def admin_paths() -> dict[str, Any]:
    """The governed routes (``sluice.ingress.admin.ADMIN_ROUTES``): each names the permission
    it needs; 401 without credentials, 403 without the permission."""
    paths: dict[str, Any] = {}
    for route in ADMIN_ROUTES:
        template = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        names = re.findall(r"\{(\w+)\}", template)
        operation: dict[str, Any] = {
            "summary": f"{route.summary} (needs {route.permission.value})",
            "operationId": route.handler.__name__,
            "security": _SECURITY,
            "parameters": [
                {"name": n, "in": "path", "required": True, "schema": _SEQ if n == "seq" else _STR}
                for n in names
            ],
            "responses": _responses(*_ADMIN_REFUSALS, ok=_ADMIN_OK),
        }
        if route.body:
            schema = _DELTA if route.wide else {"type": "object"}
            operation["requestBody"] = {
                "required": not route.path.endswith("/tokens"),
                "content": {"application/json": {"schema": schema}},
            }
        paths.setdefault(template, {})[route.method.lower()] = operation
    return paths


def _gateway_paths() -> dict[str, Any]:
    """``/v1/chat/completions`` and ``/v1/models`` (sluice.ai_gateway.routes)."""
    answer = {"description": "the provider's completion (or its events when streamed)"}
    return {
        "/v1/chat/completions": {
            "post": {
                "summary": "An OpenAI-compatible chat completion through the AI gateway",
                "operationId": "chat_completions",
                "security": _SECURITY,
                "parameters": [_IDEMPOTENCY_KEY],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _CHAT}},
                },
                "responses": {
                    **_openai_responses(
                        400, 401, 404, 409, 413, 415, 429, 502, 503, ok={"200": answer}
                    ),
                    # The routing rules refused the model: a problem document that also
                    # carries OpenAI's "error" member (sluice.governance.routing).
                    "403": {
                        "description": "model not allowed by the routing rules",
                        "content": {"application/problem+json": {"schema": _PROBLEM}},
                    },
                },
            }
        },
        "/v1/models": {
            "get": {
                "summary": "The model groups a client may name",
                "operationId": "list_models",
                "security": _SECURITY,
                "responses": _openai_responses(400, 401, ok={"200": {"description": "the list"}}),
            }
        },
    }


# A waited-on run: its view as JSON, or with Accept: text/event-stream the run as events.
_WAITED = {
    "description": (
        "finished within ?wait (JSON); with Accept: text/event-stream and ?wait, server-sent"
        " events: accepted {event_id, status}, text {step, call, text} for each piece a"
        " generate step's model produces, then result (the run as GET /v1/runs/{event_id}"
        " shows it, whether finished or not)"
    ),
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "text/event-stream": {"schema": {"type": "string"}},
    },
}


def openapi_document(
    registry: WorkflowRegistry, settings: IngressSettings, *, ai_gateway: bool = False
) -> dict[str, Any]:
    """The document served at ``/openapi.json``; ``ai_gateway`` adds the gateway's routes."""
    receipt = {
        "202": {
            "description": "accepted (or quarantined, for webhooks) and durable",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}}},
        }
    }
    paths: dict[str, Any] = {}
    for wf in registry:
        paths[f"/v1/workflows/{wf.name}/runs"] = {
            "post": {
                "summary": f"Start a run of {wf.name}",
                "operationId": f"run_{wf.name}",
                "security": _SECURITY,
                "parameters": [
                    {
                        "name": "wait",
                        "in": "query",
                        "required": False,
                        "description": "Seconds to wait for the result (200) before the 202",
                        "schema": {"type": "number", "minimum": 0, "maximum": 30},
                    },
                    _IDEMPOTENCY_KEY,
                    {
                        "name": "X-Sluice-Flag",
                        "in": "header",
                        "required": False,
                        "description": "A feature flag for metrics; undeclared ones count as other",
                        "schema": {"type": "string", "maxLength": 40},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": dict(wf.input_schema)}},
                },
                "responses": _responses(
                    400,
                    401,
                    404,
                    409,
                    413,
                    415,
                    422,
                    429,
                    503,
                    ok={**receipt, "200": _WAITED},
                ),
            }
        }
    for name in settings.sources:
        paths[f"/v1/hooks/{name}"] = {
            "post": {
                "summary": f"Webhook ingress of source {name} (Standard Webhooks signatures)",
                "operationId": f"hook_{name}",
                "parameters": _WEBHOOK_HEADERS,
                "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}},
                "responses": _responses(400, 401, 404, 409, 413, 415, 429, 503, ok=receipt),
            }
        }
    paths["/v1/runs/{event_id}"] = {
        "get": {
            "summary": "A run's status, step timings and result",
            "operationId": "get_run",
            "security": _SECURITY,
            "parameters": [
                {"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": _responses(400, 401, 404, ok={"200": {"description": "the run"}}),
        }
    }
    paths["/v1/status"] = {
        "get": {
            "summary": "Pools, caches, breakers, guards and alerts of this process",
            "operationId": "status",
            "security": _SECURITY,
            "responses": _responses(400, 401, ok={"200": {"description": "the status"}}),
        }
    }
    paths.update(admin_paths())
    paths["/metrics"] = {
        "get": {
            "summary": "Prometheus metrics",
            "operationId": "metrics",
            "responses": {"200": {"description": "text exposition format"}},
        }
    }
    paths["/openapi.json"] = {
        "get": {
            "summary": "This document",
            "operationId": "openapi",
            "responses": {"200": {"description": "OpenAPI 3.1"}},
        }
    }
    if ai_gateway:
        paths.update(_gateway_paths())
    for path in ("/healthz", "/readyz"):
        paths[path] = {
            "get": {
                "operationId": path.strip("/"),
                "responses": _responses(503, ok={"200": {"description": "ok"}}),
            }
        }
    _add_server_refusals(paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Sluice", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Receipt": {
                    "type": "object",
                    "required": ["event_id", "status"],
                    "properties": {
                        "event_id": {"type": "string"},
                        "status": {
                            "type": "string",
                            "enum": ["accepted", "quarantined", "done", "dead"],
                        },
                        "duplicate": {"type": "boolean"},
                    },
                },
                "OpenAIError": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["message", "type", "code"],
                            "properties": {
                                "message": {"type": "string"},
                                "type": {"type": "string"},
                                "code": {"type": ["string", "null"]},
                                "param": {"type": ["string", "null"]},
                            },
                        }
                    },
                },
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "correlation_id": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    }
