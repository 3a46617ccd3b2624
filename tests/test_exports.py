"""The public API is exactly what ``sluice.__all__`` and each package's ``__all__`` list;
changing it is a decision."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import sluice

#: Every package under ``sluice``, with the names its ``__all__`` exports. ``None`` marks an
#: internal package: wiring reached through ``SluiceApp``, the CLI or YAML, with no ``__all__``.
PACKAGES: dict[str, list[str] | None] = {
    "sluice.ai_gateway": None,  # served by ``sluice serve`` from the ``gateway:`` section
    "sluice.cache": [
        "BackendStats",
        "CacheBackend",
        "CacheConfigError",
        "CacheSettings",
        "CacheStats",
        "CachedModel",
        "CompletionCache",
        "KVBackend",
        "MemoryBackend",
        "RESPONSE_CACHE",
        "RETRIEVAL_CACHE",
        "ResponseCache",
        "RetrievalCache",
        "build_caches",
        "normalize_prompt",
        "parse_caches",
        "response_key",
    ],
    "sluice.cli": None,  # the ``sluice`` command
    "sluice.drills": [
        "DrillOptions",
        "DrillReport",
        "flood",
        "kill_cache_drill",
        "kill_worker_drill",
        "throttle_model",
    ],
    # The AI gateway's old name, a deprecated alias of ``sluice.ai_gateway``.
    "sluice.gateway": ["AiGateway", "GatewaySettings", "gateway_routes", "parse_gateway"],
    "sluice.governance": [
        "LOCAL_ADMIN",
        "ROLES",
        "AuditLog",
        "Authorized",
        "Change",
        "Forbidden",
        "Gate",
        "Permission",
        "Principal",
        "Role",
        "VerifyReport",
        "allowed",
        "authenticate_token",
        "authorize",
        "canonical_json",
        "create_principal",
        "digest",
        "gate_for",
        "hash_token",
        "issue_token",
        "local_admin",
        "new_signing_key",
        "permissions_of",
        "principal_from_api_key",
        "role_named",
        "signing_key_from_env",
        "verify_key_from_env",
    ],
    "sluice.guard": [
        "AesGcmCodec",
        "DEFAULT_TYPES",
        "EncryptionError",
        "Entity",
        "Keyring",
        "KeyringError",
        "MaskResult",
        "MaskSession",
        "PiiMasker",
        "PiiType",
        "Recognizer",
        "TamperedDataError",
        "UnknownKeyError",
        "key_id_of",
        "new_key",
    ],
    "sluice.ingress": ["Ingress"],  # the HTTP way in, mounted by ``sluice serve``
    "sluice.kv": [
        "FallbackKV",
        "KV",
        "KVError",
        "KVRateLimiter",
        "KVUnavailableError",
        "MemoryKV",
        "RedisKV",
        "TokenGrant",
        "build_kv",
        "kv_url",
    ],
    "sluice.models": ["Model", "ModelRequest", "ModelResult", "Usage"],
    "sluice.outbound": None,  # every outbound HTTP call; configured by ``egress:``
    "sluice.prompts": [
        "PROMPTS_DIR",
        "PromptSet",
        "PromptTemplate",
        "RenderedPrompt",
        "TemplateError",
        "Variable",
        "load_prompts",
        "parse_template",
    ],
    "sluice.reliability": None,  # configured by the ``reliability:`` and ``spend:`` sections
    "sluice.retrieval": [
        "Embedder",
        "EmbedderMismatchError",
        "FeatureEmbedder",
        "INDEXES",
        "IndexFormatError",
        "IndexFullError",
        "IndexItem",
        "IndexSettings",
        "Neighbour",
        "RetrievalError",
        "VectorIndex",
        "WarmUpReport",
        "build_index",
        "embedder_for",
        "load_index",
        "load_templates",
        "minilm_embedder",
        "open_index",
        "open_indexes",
        "parse_indexes",
        "read_meta",
        "resolved_tickets",
        "save_index",
        "ticket_id",
        "warm_up",
        "wordllama_embedder",
    ],
    "sluice.runtime": None,  # run by SluiceApp
    "sluice.steps": None,  # built-in steps, named in workflow YAML
    "sluice.store": [
        "ApiKeyRecord",
        "COST_GROUPS",
        "Completion",
        "CostRecord",
        "CostTotal",
        "EventRecord",
        "EventState",
        "IdempotencyClaim",
        "IngressStore",
        "Job",
        "JobStore",
        "NewEvent",
        "PayloadCodec",
        "QuarantineItem",
        "Receipt",
        "SpanRecord",
        "StepRecord",
        "Store",
        "TelemetryStore",
    ],
    "sluice.telemetry": None,  # configured by the ``telemetry:`` section
    "sluice.testing": [
        "AsgiServer",
        "ManualClock",
        "Outcome",
        "Reply",
        "ScriptedModel",
        "TestApp",
        "free_port",
        "step_context",
        "wait_ready",
        "wait_until",
    ],
    "sluice.workflow": [
        "JSONObject",
        "Step",
        "StepContext",
        "StepFn",
        "Workflow",
        "WorkflowRegistry",
        "load_workflow_file",
        "parse_workflow",
    ],
}


def test_exported_names() -> None:
    """The exported names are pinned."""
    assert sorted(sluice.__all__) == [
        "AdmissionError",
        "AppSettings",
        "BudgetExceededError",
        "ConfigError",
        "InvalidInputError",
        "JSONObject",
        "NotFoundError",
        "PoolSettings",
        "RuntimeSettings",
        "SluiceApp",
        "SluiceError",
        "Step",
        "StepContext",
        "StepError",
        "StepOutputError",
        "StoreError",
        "Workflow",
        "WorkflowError",
        "WorkflowRegistry",
        "load_settings",
    ]
    for name in sluice.__all__:
        assert getattr(sluice, name) is not None


def test_errors_share_one_root() -> None:
    """Every exported error derives from SluiceError."""
    errors = [getattr(sluice, n) for n in sluice.__all__ if n.endswith("Error")]
    assert all(issubclass(e, sluice.SluiceError) for e in errors)


def test_import_is_light() -> None:
    """Importing sluice pulls in no model framework and no HTTP server."""
    import subprocess
    import sys

    heavy = "('torch', 'uvicorn', 'sklearn', 'sentence_transformers')"
    code = f"import sys, sluice; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_package_is_listed() -> None:
    """A new package is a decision too: listed above as public, with its names, or internal."""
    root = Path(sluice.__file__).parent
    found = [
        ".".join(("sluice", *init.parent.relative_to(root).parts))
        for init in root.rglob("__init__.py")
        if init.parent != root
    ]
    assert sorted(found) == sorted(PACKAGES)


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_package_exports_are_pinned(name: str) -> None:
    """Each public package exports exactly its listed names, each of them real; an internal
    package declares no ``__all__``."""
    package = importlib.import_module(name)
    expected = PACKAGES[name]
    if expected is None:
        assert not hasattr(package, "__all__")
        return
    assert sorted(package.__all__) == sorted(expected)
    for export in package.__all__:
        assert getattr(package, export) is not None
