"""Sluice's own API against its OpenAPI document, as the contract gate runs it."""

from __future__ import annotations

import time
from pathlib import Path

from sluice.contracts.own_api import check_own_api

EXAMPLES = 5


async def test_the_api_conforms_to_its_document_in_well_under_a_minute(triage_copy: Path) -> None:
    started = time.perf_counter()
    result = await check_own_api(triage_copy, examples=EXAMPLES)
    took = time.perf_counter() - started
    assert result.passed, result.message
    # /healthz, /readyz, /metrics, /openapi.json, /v1/status, runs (start, get), hooks, items
    assert result.figures["operations"] >= 8
    assert result.figures["requests"] >= result.figures["operations"]
    assert result.figures["failed"] == 0
    assert took < 30, took
