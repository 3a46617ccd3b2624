"""The OpenAPI 3.1 document of the HTTP API, built from the app's workflows and sources.

Each workflow's input schema is the request body of its runs endpoint, so clients and
property-based testers see exactly what the gateway validates.
"""

from __future__ import annotations

from typing import Any

from sluice.ingress.settings import IngressSettings
from sluice.workflow.registry import WorkflowRegistry

_PROBLEM = {"$ref": "#/components/schemas/Problem"}


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


def openapi_document(registry: WorkflowRegistry, settings: IngressSettings) -> dict[str, Any]:
    """The document served at ``/openapi.json``."""
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
                "security": [{"apiKey": []}],
                "parameters": [
                    {
                        "name": "wait",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "number", "minimum": 0, "maximum": 30},
                    },
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 200},
                    },
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
                    ok={**receipt, "200": {"description": "finished within ?wait"}},
                ),
            }
        }
    for name in settings.sources:
        paths[f"/v1/hooks/{name}"] = {
            "post": {
                "summary": f"Webhook ingress of source {name} (Standard Webhooks signatures)",
                "operationId": f"hook_{name}",
                "parameters": [
                    {"name": h, "in": "header", "required": True, "schema": {"type": "string"}}
                    for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
                ],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}},
                "responses": _responses(401, 404, 409, 413, 415, 429, 503, ok=receipt),
            }
        }
    paths["/v1/runs/{event_id}"] = {
        "get": {
            "summary": "A run's status, step timings and result",
            "operationId": "get_run",
            "security": [{"apiKey": []}],
            "parameters": [
                {"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": _responses(401, 404, ok={"200": {"description": "the run"}}),
        }
    }
    for path in ("/healthz", "/readyz"):
        paths[path] = {
            "get": {
                "operationId": path.strip("/"),
                "responses": _responses(503, ok={"200": {"description": "ok"}}),
            }
        }
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
