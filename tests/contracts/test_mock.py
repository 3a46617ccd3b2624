"""Mocks generated from specs: answers, request checks, faults, and specs that cannot be mocked."""

from __future__ import annotations

import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import orjson
import pytest

from sluice.contracts.mock import Mock, MockError, MockOptions
from sluice.contracts.schemas import problems
from sluice.contracts.spec import load_spec
from sluice.errors import ConfigError
from sluice.outbound.webhooks import signed_headers
from sluice.testing import AsgiServer, free_port
from tests.contracts.conftest import TRIAGE

DELIVERY = TRIAGE / "contracts/partners/delivery.openapi.yaml"
CHAT = TRIAGE / "contracts/partners/openai-chat.openapi.yaml"
SECRET = "whsec_c2hvcC1zZWNyZXQtZm9yLXRlc3Rz"  # pragma: allowlist secret
RESULT = {
    "text": "my card is late",
    "intent": "card_arrival",
    "confidence": 0.93,
    "route": {"team": "cards", "priority": "normal"},
    "draft": {"reply": "It is on its way.", "needs_review": False},
}


def delivery(result: dict[str, object] | None = None) -> tuple[bytes, dict[str, str]]:
    """A signed delivery as the deliver step sends it."""
    body = orjson.dumps({"event_id": "ev_1", "tenant": "demo", "result": result or RESULT})
    return body, signed_headers(SECRET, "ev_1:deliver", int(time.time()), body)


def client(mock: Mock) -> httpx.AsyncClient:
    """An in-process client on the mock."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=mock.app), base_url="http://m")


async def test_a_conforming_request_gets_the_documented_answer_and_is_recorded() -> None:
    mock = Mock(load_spec(DELIVERY))
    body, headers = delivery()
    async with client(mock) as http:
        resp = await http.post("/hooks/triage", content=body, headers=headers)
    assert resp.status_code == 204
    [record] = mock.records()
    assert record.valid
    assert record.operation == "receiveTriage"
    assert record.status == 204
    assert mock.counts() == {"requests": 1, "valid": 1, "204": 1}


async def test_a_request_off_the_spec_is_refused_with_every_reason() -> None:
    mock = Mock(load_spec(DELIVERY))
    body, headers = delivery({**RESULT, "confidence": 3, "route": {"team": "cards"}})
    del headers["webhook-signature"]
    async with client(mock) as http:
        bad = await http.post("/hooks/triage", content=body, headers=headers)
        garbled = await http.post("/hooks/triage", content=b"{not json", headers=headers)
        nowhere = await http.post("/hooks/other", content=body, headers=headers)
        listed = (await http.get("/__mock/requests")).json()
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    found = bad.json()["problems"]
    assert "header webhook-signature: required, missing" in found
    assert "body $.result.confidence: 3 is greater than the maximum of 1" in found
    assert "body $.result.route: 'priority' is a required property" in found
    assert garbled.status_code == 400
    assert "body: not JSON" in garbled.json()["detail"]
    assert nowhere.status_code == 404
    assert "no such operation" in nowhere.json()["problems"][0]
    assert listed["counts"] == {"requests": 3, "invalid": 3, "422": 1, "400": 1, "404": 1}
    assert [r["status"] for r in listed["requests"]] == [422, 400, 404]


async def test_answers_come_from_examples_else_generated_data_that_validates(
    tmp_path: Path,
) -> None:
    chat = Mock(load_spec(CHAT))
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    async with client(chat) as http:
        resp = await http.post("/v1/chat/completions", json=request)
    assert resp.status_code == 200
    assert resp.json()["id"] == "chatcmpl-1"  # the spec's example
    spec = tmp_path / "gen.yaml"
    schema = {
        "type": "object",
        "required": ["id", "tags"],
        "properties": {
            "id": {"type": "string", "pattern": "^ord_[0-9]{4}$"},
            "tags": {"type": "array", "minItems": 2, "items": {"enum": ["a", "b"]}},
        },
    }
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/o": {
                "get": {
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {"application/json": {"schema": schema}},
                        }
                    }
                }
            }
        },
    }
    spec.write_bytes(orjson.dumps(doc))
    generated = Mock(load_spec(spec))
    async with client(generated) as http:
        answer = await http.get("/o")
    assert answer.status_code == 200
    assert problems(schema, answer.json()) == []


async def test_latency_errors_and_rate_limits_are_injected() -> None:
    spec = load_spec(CHAT)
    calls = 5

    async def times_ms(mock: Mock) -> list[float]:
        async with AsgiServer(mock.app) as server, httpx.AsyncClient() as http:
            times = []
            for _ in range(calls):
                started = time.perf_counter()
                await http.get(f"{server.url}/v1/models")
                times.append((time.perf_counter() - started) * 1000)
        return times

    base = await times_ms(Mock(spec))
    slow = await times_ms(Mock(spec, MockOptions(latency_ms=150)))
    # Every answer waits the latency (a lower bound, whatever the machine's load) ...
    assert min(slow) >= 150, slow
    # ... and the same calls without it, measured in the same run, are faster.
    assert statistics.median(base) < statistics.median(slow), (base, slow)

    failing = Mock(spec, MockOptions(error_rate=0.5, seed=7))
    async with client(failing) as http:
        statuses = [(await http.get("/v1/models")).status_code for _ in range(200)]
    errors = statuses.count(500)
    assert 70 <= errors <= 130, errors  # binomial(200, 0.5): well inside 4 standard deviations
    assert set(statuses) == {200, 500}

    now = [100.0]
    limited = Mock(spec, MockOptions(rate_limit=3), clock=lambda: now[0])
    async with client(limited) as http:
        first = [(await http.get("/v1/models")).status_code for _ in range(4)]
        refused = await http.get("/v1/models")
        now[0] += 1.0
        after = (await http.get("/v1/models")).status_code
    assert first == [200, 200, 200, 429]
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert after == 200


def test_bad_options_are_refused_with_the_option_named() -> None:
    with pytest.raises(ConfigError) as info:
        MockOptions(latency_ms=-1, error_rate=1.5, rate_limit=-2)
    assert info.value.problems == [
        "latency: must be at least 0 ms, got -1",
        "error-rate: must be between 0 and 1, got 1.5",
        "rate-limit: must be at least 0, got -2",
    ]


def test_a_spec_that_cannot_be_mocked_names_each_operation_and_why(tmp_path: Path) -> None:
    spec = tmp_path / "partner.yaml"
    spec.write_text(
        textwrap.dedent("""
        openapi: 3.1.0
        info: {title: partner, version: "1"}
        paths:
          /gone:
            delete:
              operationId: dropIt
              responses: {"404": {description: never there}}
          /wrong:
            get:
              responses:
                "200":
                  description: ok
                  content:
                    application/json:
                      schema: {type: object, required: [n], properties: {n: {type: integer}}}
                      example: {n: "three"}
          /impossible:
            get:
              responses:
                "200":
                  description: ok
                  content:
                    application/json:
                      schema: {type: integer, minimum: 5, maximum: 1}
          /fine:
            get:
              responses: {"204": {description: nothing}}
    """)
    )
    with pytest.raises(MockError) as info:
        Mock(load_spec(spec))
    found = info.value.problems
    assert len(found) == 3, found
    assert found[0] == "DELETE /gone (dropIt): no 2xx response to answer with"
    assert found[1].startswith(
        "GET /wrong (GET /wrong): the example of response 200 does not "
        "validate against its schema: $.n: 'three' is not of type"
    )
    assert found[2].startswith("GET /impossible (GET /impossible): response 200: no value can be")


def test_sluice_mock_serve_runs_the_mock_and_refuses_what_it_cannot_mock(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "sluice", "mock", "serve", str(DELIVERY), "--port", str(port)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/__mock/requests").status_code == 200
            except httpx.TransportError:
                return False

        deadline = time.monotonic() + 30
        while not up():
            assert proc.poll() is None, "the mock exited"
            assert time.monotonic() < deadline, "the mock did not start within 30 s"
            time.sleep(0.1)
        body, headers = delivery()
        assert httpx.post(f"{url}/hooks/triage", content=body, headers=headers).status_code == 204
        assert httpx.post(f"{url}/hooks/triage", json={}).status_code == 422
        assert httpx.get(f"{url}/__mock/requests").json()["counts"]["invalid"] == 1
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert f"on http://127.0.0.1:{port}: POST /hooks/triage" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "openapi: 3.0.0\ninfo: {title: b, version: '1'}\npaths:\n  /x:\n"
        "    get: {responses: {'500': {description: down}}}\n"
    )
    failed = subprocess.run(
        [*cmd[:5], str(broken)], check=False, capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 2
    assert "GET /x (GET /x): no 2xx response to answer with" in failed.stderr


async def test_a_json_schema_is_the_body_of_one_operation(tmp_path: Path) -> None:
    path = tmp_path / "receiver.schema.yaml"
    path.write_text(
        textwrap.dedent("""
        x-sluice-operation: {method: POST, path: /hooks/orders, status: 202}
        type: object
        required: [order_id]
        properties: {order_id: {type: string, minLength: 1}}
    """)
    )
    mock = Mock(load_spec(path))
    [op] = mock.spec.operations
    assert (op.method, op.path, op.body_required) == ("POST", "/hooks/orders", True)
    async with client(mock) as http:
        good = await http.post("/hooks/orders", json={"order_id": "o-1"})
        bad = await http.post("/hooks/orders", json={"order_id": ""})
        empty = await http.post("/hooks/orders")
    assert good.status_code == 202
    assert bad.status_code == 422
    assert bad.json()["problems"] == ["body $.order_id: '' should be non-empty"]
    assert empty.json()["problems"] == ["body: required, missing"]
