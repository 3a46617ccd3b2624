"""Hostile and malformed requests: never a 5xx, never a hang, nothing accepted and lost.

Two sources of inputs: hypothesis strategies of our own (random JSON, random bytes, forged
headers) through the in-process client, and schemathesis driving a real ``sluice serve``
from its OpenAPI document.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from sluice.testing import free_port
from tests.ingress.conftest import CONFIG, WORKFLOW, Ingress

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=40,
)
HOOK = "/v1/hooks/helpdesk"
ALLOWED = {200, 202, 400, 401, 404, 409, 413, 415, 422, 429, 503}


async def _check_accounting(ingress: Ingress, receipts: list[dict[str, Any]]) -> None:
    """Every 202 names an event or a quarantine entry that exists."""
    for receipt in receipts:
        if receipt["status"] == "quarantined":
            await ingress.app.store.get_quarantined(receipt["event_id"])
        else:
            await ingress.app.store.get_event(receipt["event_id"])


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=JSON, signed=st.booleans(), msg_id=st.text(min_size=1, max_size=20))
async def test_webhooks_survive_random_json(
    ingress: Ingress, payload: Any, signed: bool, msg_id: str
) -> None:
    """Random JSON, signed or not: a known status, and 202s are all accounted for."""
    body = orjson.dumps(payload)
    headers = ingress.signed(body, msg_id=msg_id.encode("ascii", "ignore").decode() or "m")
    if not signed:
        headers["webhook-signature"] = "v1,Zm9yZ2Vk"
    resp = await asyncio.wait_for(ingress.http.post(HOOK, content=body, headers=headers), 5)
    assert resp.status_code in ALLOWED
    if resp.status_code == 202:
        await _check_accounting(ingress, [resp.json()])


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=300), ctype=st.sampled_from(["application/json", "text/x", ""]))
async def test_api_survives_random_bytes(ingress: Ingress, body: bytes, ctype: str) -> None:
    """Random bytes to the runs endpoint: refused clearly or accepted and stored."""
    headers = {**ingress.auth(), "content-type": ctype}
    resp = await asyncio.wait_for(
        ingress.http.post("/v1/workflows/tickets/runs", content=body, headers=headers), 5
    )
    assert resp.status_code in ALLOWED
    if resp.status_code == 202:
        await _check_accounting(ingress, [resp.json()])


# schemathesis against a real server -------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real ``sluice serve`` and an API key for it."""
    import textwrap

    app_dir = tmp_path_factory.mktemp("fuzz")
    (app_dir / "workflows").mkdir()
    (app_dir / "sluice.yaml").write_text(textwrap.dedent(CONFIG))
    (app_dir / "workflows" / "tickets.yaml").write_text(textwrap.dedent(WORKFLOW))
    sluice = [sys.executable, "-m", "sluice"]
    key = subprocess.run(
        [*sluice, "apikey", "create", "--tenant", "acme", "--app", str(app_dir)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    port = free_port()
    proc = subprocess.Popen([*sluice, "serve", str(app_dir), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    yield url, key
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_openapi_operations_never_fail_on_the_server(
    server: tuple[str, str], mode: GenerationMode
) -> None:
    """Requests generated from the OpenAPI document, valid and invalid, for every operation:
    no 5xx and only documented statuses."""
    url, key = server
    api = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 5
    seen: set[int] = set()
    exercised = 0
    for operation in operations:

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def exercise(case: Any) -> None:
            response = case.call(base_url=url, headers={"authorization": f"Bearer {key}"})
            assert response.status_code in ALLOWED, (case.path, response.status_code, response.text)
            seen.add(response.status_code)

        try:
            exercise()
        except Unsatisfiable:
            # An operation without inputs (healthz) has no invalid variant to generate.
            assert mode is GenerationMode.NEGATIVE
            continue
        exercised += 1
    assert exercised >= 3
    assert seen & {200, 202, 400, 401, 404, 422}
