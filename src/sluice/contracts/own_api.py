"""Sluice's own API against its OpenAPI document (``GET /openapi.json``), with schemathesis.

The app's way in is started in this process without pools (:func:`~sluice.contracts.harness.
ingress_app`) and served on a free port of 127.0.0.1; schemathesis generates up to
``examples`` requests per operation from the document the app serves, sends them with an
operator key and checks each answer: no 5xx, a documented status, a documented content type,
a body that validates against the documented schema. The first failures are reported with the
operation and the check that failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok

from sluice.contracts.harness import ingress_app
from sluice.contracts.results import CheckResult
from sluice.testing.servers import AsgiServer

_SHOWN = 5
_TIMEOUT_S = 30.0
_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _failure_text(exc: BaseException) -> str:
    if isinstance(exc, FailureGroup):
        return "; ".join(_failure_text(e) for e in exc.exceptions[:2])
    if isinstance(exc, Failure):
        return f"{exc.title}: {' '.join(str(exc.message).split())[:200]}"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def _exercise(
    doc: dict[str, Any], base_url: str, headers: Mapping[str, str], examples: int
) -> tuple[int, int, int, list[str]]:
    """Operations, cases sent, cases failed, and the first failures (runs in a thread: the
    calls are blocking and the server answers in the event loop)."""
    api = schemathesis.openapi.from_dict(doc)
    operations = [r.ok() for r in api.get_all_operations() if isinstance(r, Ok)]
    sent = 0
    failed = 0
    failures: list[str] = []
    for operation in operations:

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            nonlocal sent, failed
            sent += 1
            if isinstance(case.query, dict) and "wait" in case.query:
                # No pool runs here: a run never finishes, so ?wait= would only hold the call.
                case.query["wait"] = 0
            response = case.call(base_url=base_url, headers=dict(headers), timeout=_TIMEOUT_S)
            try:
                case.validate_response(response, checks=_CHECKS)
            except (Failure, FailureGroup) as exc:
                failed += 1
                if len(failures) < _SHOWN:
                    where = f"{case.method.upper()} {case.path}"
                    failures.append(f"{where} -> {response.status_code}: {_failure_text(exc)}")

        try:
            run()
        except Unsatisfiable:
            continue  # an operation with nothing to vary (no parameters): its one call was made
    return len(operations), sent, failed, failures


async def check_own_api(
    app_dir: Path, *, examples: int = 10, environ: Mapping[str, str] | None = None
) -> CheckResult:
    """Sluice's HTTP API for the app in ``app_dir`` against its own OpenAPI document."""
    started = time.perf_counter()
    async with ingress_app(app_dir, environ) as running:
        doc = (await running.http.get("/openapi.json")).json()
        async with AsgiServer(running.http_app) as server:
            operations, sent, failed, failures = await asyncio.to_thread(
                _exercise, doc, server.url, running.auth(), examples
            )
    passed = operations > 0 and sent > 0 and failed == 0
    message = (
        f"own-api: {sent - failed}/{sent} requests over {operations} operations of "
        f"/openapi.json conform (at most {examples} examples each)"
    )
    if failures:
        message += f"; first problem: {failures[0]}"
    figures = {
        "operations": operations,
        "requests": sent,
        "failed": failed,
        "examples_per_operation": examples,
    }
    return CheckResult(
        "own-api", passed, message, figures, tuple(failures), time.perf_counter() - started
    )
