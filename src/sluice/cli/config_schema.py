"""The JSON Schema of ``sluice.yaml`` and of workflow files, and the configuration reference
generated from them.

One description per key lives here, in one place: ``sluice config schema`` prints the schema
(``docs/schema/*.schema.json`` are copies, for editors: a YAML language server completes and
checks files that point at them), and ``sluice config reference`` renders ``docs/
configuration.md`` from the same data. Tests keep all three equal to what this module
generates, and probe the schema against the real parsers: every key it documents loads, and
an unknown key at every level it closes is refused with its path, so the schema cannot drift
from what Sluice accepts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sluice.workflow.loader import WORKFLOW_FILE_SCHEMA

Schema = dict[str, Any]
_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _obj(
    description: str,
    properties: Mapping[str, Schema],
    *,
    required: Sequence[str] = (),
    closed: bool = True,
) -> Schema:
    schema: Schema = {"type": "object", "description": description, "properties": dict(properties)}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def _map(description: str, values: Schema, example_key: str) -> Schema:
    """A mapping of user-chosen names to ``values``."""
    return {
        "type": "object",
        "description": description,
        "additionalProperties": values,
        "x-example-key": example_key,
    }


def _num(description: str, example: float, *, minimum: float | None = 0) -> Schema:
    schema: Schema = {"type": "number", "description": description, "examples": [example]}
    if minimum is not None:
        schema["minimum"] = minimum
    return schema


def _int(description: str, example: int, *, minimum: int = 1) -> Schema:
    return {
        "type": "integer",
        "description": description,
        "minimum": minimum,
        "examples": [example],
    }


def _str(description: str, example: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, "examples": [example], **extra}


def _bool(description: str, example: bool) -> Schema:
    return {"type": "boolean", "description": description, "examples": [example]}


def _enum(description: str, values: Sequence[str]) -> Schema:
    return {"enum": list(values), "description": description, "examples": [values[0]]}


_CACHE_FIELDS: dict[str, Schema] = {
    "max_entries": _int("Most entries kept in process (memory backend).", 10_000),
    "max_mb": _num("Most megabytes kept in process (memory backend).", 64),
    "ttl_s": _num("Seconds an entry lives (finite, a day at most, on the KV).", 3600),
    "backend": _enum(
        "memory: per process; kv: in the app's KV (with Redis, shared by every process).",
        ["memory", "kv"],
    ),
    "prefix": _str("Key namespace of a KV cache.", "cache:"),
    "max_value_kb": _int("Largest value a KV cache stores, in KiB.", 256),
}

_BREAKER = _obj(
    "When a model's circuit breaker opens, how long it stays open and how it probes.",
    {
        "failure_threshold": _int("Consecutive failures that open it.", 5),
        "error_rate": _num("Failure rate over window_s that opens it.", 0.5),
        "window_s": _num("The error-rate window, in seconds.", 30),
        "min_requests": _int("Calls in the window before the rate counts.", 20),
        "open_s": _num("Seconds it stays open before probing.", 10),
        "half_open_probes": _int("Calls let through when probing.", 1),
        "probe_successes": _int("Probe successes that close it.", 1),
    },
)

_SLO_FIELDS: dict[str, Schema] = {
    "p95_ms": _num("The p95 latency objective, in milliseconds.", 3000),
    "error_rate": _num("The error-rate objective (0..1).", 0.05),
    "window_s": _num("The window the guard judges, in seconds.", 60),
    "policy": _enum(
        "What the guard does past its objective: degrade to the cheaper path, shed load, or "
        "fail closed.",
        ["degrade", "shed", "fail_closed"],
    ),
    "recover_s": _num("Seconds within the objective before it recovers.", 30),
    "margin": _num("Share of the objective at which it acts (0..1].", 0.8),
    "min_events": _int("Events in the window before it judges.", 20),
    "shed_admit": _num("Share of events still admitted while shedding (0..1).", 0.5),
}

_LOCAL_MODEL = _obj(
    "A local classifier trained by `sluice train` (kinds: tfidf, wordllama, minilm, stacked).",
    {
        "kind": _enum("The model kind.", ["wordllama", "tfidf", "minilm", "stacked"]),
        "train": _str("text,category CSV to train on, relative to the app.", "data/train.csv"),
        "price_per_call": _num("What one call costs, for the ledger and budgets.", 0.000002),
        "c": _num("Regularisation of the logistic regression (default: the kind's).", 1.0),
        "features": {
            "type": "object",
            "description": "Feature blocks and their weights, replacing the kind's preset.",
            "additionalProperties": {"type": "number"},
            "examples": [{"wordllama": 1.0, "tfidf_word": 1.0}],
        },
        "calibration": _enum("Confidence calibration.", ["temperature", "none"]),
        "cv_folds": _int("Folds used to calibrate.", 3, minimum=2),
        "seed": _int("Training seed.", 7, minimum=0),
    },
    required=["kind"],
)

_REMOTE_MODEL = _obj(
    "A chat model behind an OpenAI-compatible endpoint, used as a classifier or by generate "
    "steps (OpenAI, vLLM, Ollama, llama.cpp, the simulator).",
    {
        "kind": {
            "const": "openai",
            "description": "An OpenAI-compatible endpoint.",
            "examples": ["openai"],
        },
        "base_url": _str("The endpoint, up to /v1.", "http://127.0.0.1:8900/v1"),
        "model": _str("The provider's model id (default: the entry's name).", "gpt-4o-mini"),
        "api_key_env": _str("Environment variable holding the API key.", "OPENAI_API_KEY"),
        "timeout_s": _num("Seconds per call (default 30).", 20),
        "max_connections": _int("Pooled connections to the endpoint.", 64),
        "params": {
            "type": "object",
            "description": "Request parameters sent with every call.",
            "examples": [{"temperature": 0, "max_tokens": 64}],
        },
        "labels": {
            "description": "The labels it may answer: a list, or a CSV whose label "
            "(or category) column lists them.",
            "type": ["array", "string"],
            "examples": [["card_lost", "refund"]],
        },
        "version": _str("Bump when the prompt or provider model changes (cache keys).", "2"),
    },
    required=["kind", "base_url"],
)

_LIMIT = _obj(
    "A token bucket: requests per second and bucket size.",
    {"rate": _num("Requests per second.", 100), "burst": _num("Bucket size.", 200)},
)

_DEPLOYMENT = _obj(
    "One upstream deployment of a gateway model group (tried in order: fallback).",
    {
        "name": _str("Names its breaker (gateway:NAME) and its price.", "primary"),
        "base_url": _str("The upstream endpoint, up to /v1.", "http://127.0.0.1:8900/v1"),
        "model": _str("The provider's model id.", "gpt-4o-mini"),
        "api_key_env": _str("Environment variable holding the API key.", "PRIMARY_KEY"),
        "timeout_s": _num("Seconds per call.", 30),
        "max_connections": _int("Pooled connections.", 64),
        "price_as": _str("The prices entry (default: name).", "gpt-4o-mini"),
    },
    required=["name", "base_url", "model"],
)

_GATEWAY_LIMIT = _obj(
    "A tenant's limits on the AI gateway.",
    {
        "requests_per_s": _num("Requests per second.", 50),
        "burst": _num("Bucket size.", 100),
        "tokens_per_min": _int("Tokens per minute.", 200_000),
    },
)

#: Every section of sluice.yaml (the keys of :data:`sluice.config.SECTIONS`).
APP_SECTIONS: dict[str, Schema] = {
    "store": _str(
        "The system of record and queue: sqlite:///PATH (relative to the app) or "
        "postgresql://USER@HOST/DB[?schema=NAME]. SLUICE_STORE overrides it.",
        "sqlite:///.sluice/app.db",
        pattern="^(sqlite:///|postgres(ql)?://)",
    ),
    "kv": _str(
        "The key-value store for shared limits, caches and budgets: memory:// or "
        "redis://HOST:PORT/DB[?prefix=P:&fallback=0&connect_timeout_ms=250&timeout_ms=500]. "
        "SLUICE_KV overrides it.",
        "memory://",
        pattern="^(memory|rediss?)://",
    ),
    "workflows": _str("The directory of workflow files, relative to the app.", "workflows"),
    "pools": _map(
        "Worker pools by name: each kind of work in its own pool with its own cap.",
        _obj(
            "One worker pool.",
            {
                "concurrency": _int("Steps run at once.", 8),
                "queue_limit": _int("Jobs waiting; past it, ingress answers 503.", 100),
            },
        ),
        "inference",
    ),
    "runtime": _obj(
        "Timing of the dispatcher and the store.",
        {
            "lease_ms": _int("How long a claimed job stays leased without a heartbeat.", 30_000),
            "heartbeat_ms": _int("How often a worker renews its leases.", 1_000),
            "poll_ms": _int("How often an idle worker polls for due retries.", 50),
            "synchronous": _enum("SQLite's synchronous setting.", ["full", "normal"]),
            "max_batch": _int("Most jobs committed in one transaction.", 512),
        },
    ),
    "models": _map(
        "Models by name: local classifiers and remote endpoints.",
        {"oneOf": [_LOCAL_MODEL, _REMOTE_MODEL]},
        "small",
    ),
    "model_groups": {
        "type": "object",
        "description": "Named groups of models, tried in order (fallback across providers); "
        "a generate step's model may name one. An empty list: no model configured (the "
        "step's fallback answers).",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "examples": [{"drafter": ["llm", "backup"]}],
    },
    "prices": {
        "type": "object",
        "description": "Price of each model or deployment, by its name (currency: informational).",
        "properties": {"currency": _str("The currency every figure uses.", "USD")},
        "additionalProperties": _obj(
            "The price of one model: per 1,000 tokens in and out, and/or per call.",
            {
                "input_per_1k": _num("Price per 1,000 input tokens.", 0.00015),
                "output_per_1k": _num("Price per 1,000 output tokens.", 0.0006),
                "per_call": _num("A flat price per call.", 0.000002),
            },
        ),
        "x-example-key": "gpt-small",
    },
    "spend": _obj(
        "Spend budgets, held before each model call so that concurrent calls cannot overshoot.",
        {
            "limits": _map(
                "Budgets by key: workflow:NAME, tenant:ID, or tenant:* (each tenant's default).",
                _obj(
                    "One budget.",
                    {
                        "amount": _num("What may be spent per window.", 5.0),
                        "window": _enum("The budget's window.", ["hour", "day", "minute"]),
                        "on_exhausted": _enum(
                            "refuse the call, or degrade to the declared cheaper path.",
                            ["degrade", "refuse"],
                        ),
                    },
                    required=["amount"],
                ),
                "workflow:triage",
            ),
            "reserve": {
                "type": "object",
                "description": "What to hold per call of a model "
                "before it runs, overriding its estimate.",
                "additionalProperties": {"type": "number", "minimum": 0},
                "examples": [{"large": 0.0002}],
            },
            "default_reserve": _num("What to hold for a model with no estimate.", 0.01),
        },
    ),
    "reliability": _obj(
        "Breakers, retry budgets and bulkheads of the costly model tiers.",
        {
            "guard_tiers": _bool("false: costly tiers are called bare (baselines, drills).", True),
            "breaker": _BREAKER,
            "retry_budget": _obj(
                "Retries allowed per downstream: ratio of first attempts plus floor, per window.",
                {
                    "ratio": _num("Retries per first attempt.", 0.1),
                    "floor": _int("Retries always allowed per window.", 3, minimum=0),
                    "window_s": _num("The window, in seconds.", 10),
                    "max_names": _int("Downstreams tracked (least recently used forgotten).", 1024),
                },
            ),
            "max_in_flight": {
                "type": "object",
                "description": "A bulkhead per costly model: past it, the fallback answers.",
                "additionalProperties": {"type": "integer", "minimum": 1},
                "examples": [{"llm": 4}],
            },
        },
    ),
    "indexes": _map(
        "Retrieval indexes by name (`sluice index build`).",
        _obj(
            "One index.",
            {
                "embedder": _enum("The sentence embedder.", ["minilm", "wordllama"]),
                "path": _str("Where it lives (default .sluice/indexes/NAME).", ".sluice/idx"),
                "data": _str(
                    "text,category CSV that `sluice index build` embeds.", "data/train.csv"
                ),
                "templates": _str("Intent -> resolution text (YAML).", "kb/templates.yaml"),
                "max_items": _int("Most items the index holds.", 100_000),
            },
        ),
        "tickets",
    ),
    "caches": _obj(
        "The response cache (model answers) and the retrieval cache (neighbours).",
        {
            "responses": _obj("Model answers.", _CACHE_FIELDS),
            "retrieval": _obj("Neighbours found by the retrieve step.", _CACHE_FIELDS),
        },
    ),
    "rate_limits": _obj(
        "Token buckets per tenant, and narrower ones per tenant and workflow (in the KV: "
        "shared by every gateway with Redis).",
        {
            "default": _LIMIT,
            "tenants": _map("A tenant's own limit.", _LIMIT, "acme"),
            "workflows": _map(
                "TENANT/WORKFLOW or */WORKFLOW: a second, narrower bucket.", _LIMIT, "acme/triage"
            ),
        },
    ),
    "sources": _map(
        "Webhook sources (POST /v1/hooks/NAME), signed with Standard Webhooks secrets.",
        _obj(
            "One source.",
            {
                "workflow": _str("The workflow its events start.", "triage"),
                "tenant": _str("The tenant its events belong to.", "default"),
                "secrets": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Signing secrets inline (tests and demos only).",
                    "examples": [["whsec_ZGVtbw=="]],
                },
                "secrets_env": _str(
                    "Environment variable with space-separated secrets.", "SLUICE_HELPDESK_SECRETS"
                ),
                "mapping": {
                    "type": "object",
                    "description": "Input field -> JSONPath into "
                    "the payload, or {path, default, transform}.",
                    "examples": [{"text": "$.ticket.description"}],
                },
            },
            required=["workflow"],
        ),
        "helpdesk",
    ),
    "ingress": _obj(
        "Request limits, the idempotency window and the HTTP server's limits.",
        {
            "max_body_bytes": _int("Largest request body.", 1_048_576),
            "max_depth": _int("Deepest JSON nesting.", 32),
            "max_fields": _int("Most JSON fields in a body.", 2_000),
            "idempotency_window_s": _num("How long an idempotency key is remembered.", 86_400),
            "server": _obj(
                "What one serving process allows its clients (serve options override them).",
                {
                    "header_timeout_s": _num("Seconds to receive a request's headers.", 10),
                    "body_timeout_s": _num("Seconds to receive its body.", 30),
                    "keep_alive_s": _int("Idle seconds before a kept-alive connection closes.", 5),
                    "max_connections": _int("Open connections in all.", 8_192),
                    "max_connections_per_client": _int("Open connections per address.", 1_024),
                    "max_in_flight": _int("Requests handled at once.", 1_000),
                    "max_header_bytes": _int("Largest request head.", 65_536),
                    "max_headers": _int("Most request headers.", 100),
                },
            ),
        },
    ),
    "egress": _obj(
        "The older form of outbound.allow (its hosts are added to the allowlist).",
        {
            "allow": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Hosts (host or host:port) outbound calls may reach.",
                "examples": [["api.example.com"]],
            },
            "timeout_s": _num("Seconds per outbound call (outbound.timeout_s wins).", 10),
        },
    ),
    "outbound": _obj(
        "The egress policy every outbound call passes (steps, webhooks, alerts, model "
        "providers, gateway upstreams): the name is resolved once and the connection goes to "
        "the checked address; private, loopback, link-local and IPv4-in-IPv6 ranges are "
        "refused unless allow_private names them. `sluice egress check URL --app DIR`.",
        {
            "allow": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Allowed hosts: host, host:port, *.domain or [IPv6].",
                "examples": [["hooks.example.com", "*.partner.example"]],
            },
            "tenants": _map(
                "Hosts only one tenant's events may reach.",
                _obj(
                    "One tenant's extra hosts.",
                    {
                        "allow": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "The tenant's hosts.",
                            "examples": [["hooks.acme.example"]],
                        }
                    },
                ),
                "acme",
            ),
            "allow_private": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Networks allowed although private or loopback (local development).",
                "examples": [["127.0.0.1/32"]],
            },
            "proxy": _str(
                "An HTTP CONNECT egress proxy for every outbound call.",
                "http://egress-proxy.internal:3128",
            ),
            "timeout_s": _num("Seconds per outbound call.", 10),
            "max_response_bytes": _int("Largest response body read.", 4_194_304),
            "max_redirects": _int("Redirects followed, each admitted again.", 3, minimum=0),
        },
    ),
    "metrics": _obj(
        "Prometheus label bounds.",
        {
            "max_tenants": _int("Tenants labelled by name; the rest fold into `other`.", 100),
            "flags": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Flag names allowed as a label.",
                "examples": [["new_prompt"]],
            },
        },
    ),
    "alerts": _obj(
        "Cost and token spike alerts against a rolling baseline.",
        {
            "window_s": _num("One evaluation window, in seconds.", 60),
            "baseline_windows": _int("The baseline is the median of this many windows.", 10),
            "min_baseline": _int("Judged windows needed before anything fires.", 3),
            "factor": _num("Fire when a figure exceeds baseline x factor.", 2.0),
            "min_calls": _int("Windows with fewer calls are not judged.", 20),
            "signals": {
                "type": "array",
                "items": {"enum": ["cost_per_request", "output_tokens_per_call"]},
                "description": "What is watched.",
                "examples": [["cost_per_request"]],
            },
            "webhook": _str(
                "Where alerts are posted (must be allowed by egress).",
                "https://hooks.example.com/sluice",
            ),
            "queue": _int("Alerts waiting to be posted; past it they are dropped.", 100),
        },
    ),
    "encryption": _obj(
        "Payload encryption at rest (AES-GCM). Real deployments give the keys in "
        "SLUICE_ENCRYPTION_KEYS (`id=base64 ...`) and SLUICE_ENCRYPTION_ACTIVE; to rotate, "
        "restart every process with both keys, then make the new one active.",
        {
            "active": _str("The id of the key that encrypts new payloads.", "k2"),
            "keys": {
                "type": "object",
                "description": "Key id -> base64 key (tests and demos only).",
                "additionalProperties": {"type": "string"},
                "examples": [{"k2": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}],
            },
        },
    ),
    "telemetry": _obj(
        "Tracing, the span store, the cost ledger and logs.",
        {
            "tracing": _bool("Spans for ingress, steps, model calls and cache lookups.", True),
            "sample_ratio": _num(
                "Share of new traces kept (1.0 on SQLite, 0.1 on PostgreSQL by default).", 1.0
            ),
            "otlp_endpoint": _str(
                "An OTLP/HTTP collector (or OTEL_EXPORTER_OTLP_ENDPOINT).", "http://collector:4318"
            ),
            "local_spans": _bool("Keep spans in the app's store for `sluice trace`.", True),
            "max_spans": _int("The span store's bound; the oldest go first.", 200_000),
            "span_ttl_s": _num("Seconds spans are kept.", 604_800),
            "cost_ttl_s": _num("Seconds ledger rows are kept.", 7_776_000),
            "log_prompts": _bool("Log model prompts (always PII-masked).", False),
            "ledger": _bool("One cost-ledger row per model call (`sluice costs`).", True),
            "buffer": _int(
                "Spans and rows waiting to be written; past it they are dropped.", 50_000
            ),
            "flush_ms": _int("How often the buffer is written.", 500),
            "service_name": _str("The service name on spans (or OTEL_SERVICE_NAME).", "sluice"),
        },
    ),
    "gateway": _obj(
        "The OpenAI-compatible AI gateway (POST /v1/chat/completions, GET /v1/models).",
        {
            "models": _map(
                "What clients send as `model`: a group of deployments tried in order.",
                {"type": "array", "items": _DEPLOYMENT, "minItems": 1},
                "chat",
            ),
            "limits": _obj(
                "Per-tenant limits.",
                {
                    "default": _GATEWAY_LIMIT,
                    "tenants": _map("A tenant's own limits.", _GATEWAY_LIMIT, "acme"),
                },
            ),
            "cache": _obj(
                "The gateway's response cache (backend auto: the KV when it is shared).",
                {
                    **_CACHE_FIELDS,
                    "backend": _enum("Where entries live.", ["auto", "memory", "kv"]),
                    "enabled": _bool("Cache answers.", True),
                    "max_bytes": _int("Deprecated: use max_mb.", 67_108_864),
                },
            ),
            "idempotency": _obj(
                "Idempotency-Key handling.",
                {
                    "ttl_s": _num("How long a key is remembered.", 86_400),
                    "max_entries": _int("Most keys kept in process.", 10_000),
                    "wait_s": _num("How long a duplicate waits for the first answer.", 60),
                },
            ),
            "slo": _obj(
                "The SLO guard of every group.", _SLO_FIELDS, required=["p95_ms", "error_rate"]
            ),
            "max_body_bytes": _int("Largest request body.", 1_048_576),
            "reserve_output_tokens": _int("Output tokens a budget reservation assumes.", 256),
        },
    ),
}


def app_schema() -> Schema:
    """The JSON Schema of ``sluice.yaml``."""
    return {
        "$schema": _DRAFT,
        "$id": "https://sluice.run/schema/sluice.schema.json",
        "title": "sluice.yaml",
        "description": "The configuration of a Sluice app (docs/configuration.md).",
        "type": "object",
        "additionalProperties": False,
        "properties": copy.deepcopy(APP_SECTIONS),
    }


def workflow_schema() -> Schema:
    """The JSON Schema of a workflow file (``workflows/*.yaml``), with its ``slo:`` section."""
    schema = copy.deepcopy(dict(WORKFLOW_FILE_SCHEMA))
    schema["properties"]["slo"] = _obj(
        "The workflow's SLO guard: past its objective it acts by its policy.",
        _SLO_FIELDS,
        required=["p95_ms", "error_rate"],
    )
    return {
        "$schema": _DRAFT,
        "$id": "https://sluice.run/schema/workflow.schema.json",
        "title": "Sluice workflow",
        "description": "A workflow file: its input schema and its steps (docs/configuration.md).",
        **schema,
    }


def walk(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every (path, schema) under ``schema``, parents first; a mapping's values appear under
    its ``x-example-key`` (or ``NAME``), a list's items under ``[0]``."""
    yield path, schema
    for key, sub in (schema.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{key}" if path else key)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and ("type" in extra or "oneOf" in extra):
        yield from walk(extra, f"{path}.{schema.get('x-example-key', 'NAME')}")
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[0]")
    for option in schema.get("oneOf") or ():
        yield from walk(option, path)


def _type(schema: Schema) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type", "object" if "oneOf" in schema else "any")
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def reference() -> str:
    """``docs/configuration.md``: every key of sluice.yaml and of a workflow file."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `sluice config reference` from src/sluice/cli/config_schema.py;",
        "     tests/cli/test_config_schema.py keeps it equal. Do not edit by hand. -->",
        "",
        "An app is a directory with `sluice.yaml` and `workflows/*.yaml`. Every section and key",
        "below is checked at load, and an unknown one is an error naming its path (with a",
        "suggestion when one is close): `sluice config check APP` lists every problem at once.",
        "Editors can complete and check both files with the JSON Schemas in `docs/schema/`",
        "(`# yaml-language-server: $schema=...` on a file's first line).",
        "",
        "Names in CAPITALS stand for names you choose. `SLUICE_STORE`, `SLUICE_KV`,",
        "`SLUICE_ENCRYPTION_KEYS`/`SLUICE_ENCRYPTION_ACTIVE` and `SLUICE_CACHE_BACKEND` override",
        "the file; `docs/cli.md` lists the `SLUICE_*` options of `serve` and `worker`.",
        "",
        "Endpoints that need an API key (`Authorization: Bearer sk_...`, `sluice apikey create`):",
        "`/v1/workflows/*/runs`, `/v1/runs/*`, `/v1/status` (operators see everything),",
        "`/v1/indexes/*/items`, `/v1/chat/completions`, `/v1/models`. Webhooks",
        "(`/v1/hooks/*`) are authenticated by their signatures; `/healthz`, `/readyz`,",
        "`/metrics` and `/openapi.json` are open.",
        "",
    ]
    for title, schema in (("sluice.yaml", app_schema()), ("Workflow files", workflow_schema())):
        lines += [f"## {title}", "", schema["description"], ""]
        lines += ["| key | type | description | example |", "|---|---|---|---|"]
        for path, sub in walk(schema):
            if not path:
                continue
            example = sub.get("examples", [""])[0]
            shown = f"`{_yaml_inline(example)}`" if example != "" else ""
            described = str(sub.get("description", "")).replace("|", "\\|")
            lines.append(f"| `{path}` | {_type(sub)} | {described} | {shown} |")
        lines.append("")
    return "\n".join(lines)


def _yaml_inline(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)
