"""API runs over HTTP: accept, wait, read back, and refuse clearly."""

from __future__ import annotations

import asyncio
import time

import pytest

from sluice.config import load_settings
from sluice.errors import ConfigError
from sluice.ingress.settings import parse_ingress
from tests.conftest import MakeApp
from tests.ingress.conftest import CONFIG, Ingress

RUNS = "/v1/workflows/tickets/runs"


async def test_accept_then_read_back(ingress: Ingress) -> None:
    """202 with an event id and a Location; the run reads back done with its result."""
    resp = await ingress.http.post(RUNS, json={"text": "hi"}, headers=ingress.auth())
    assert resp.status_code == 202
    event_id = resp.json()["event_id"]
    assert resp.headers["location"] == f"/v1/runs/{event_id}"
    assert resp.headers["x-correlation-id"]
    await ingress.app.runtime.wait(event_id, 5)
    run = (await ingress.http.get(f"/v1/runs/{event_id}", headers=ingress.auth())).json()
    assert run["status"] == "done"
    assert run["result"] == {"text": "hi"}
    assert [s["step"] for s in run["steps"]] == ["keep"]


async def test_wait_returns_the_result(ingress: Ingress) -> None:
    """``?wait=`` answers 200 with the finished run."""
    resp = await ingress.http.post(f"{RUNS}?wait=5", json={"text": "x"}, headers=ingress.auth())
    assert resp.status_code == 200
    assert resp.json()["result"] == {"text": "x"}


async def test_runs_of_another_tenant_do_not_exist(ingress: Ingress) -> None:
    """A tenant cannot read another tenant's run."""
    resp = await ingress.http.post(RUNS, json={"text": "mine"}, headers=ingress.auth("acme"))
    event_id = resp.json()["event_id"]
    other = await ingress.http.get(f"/v1/runs/{event_id}", headers=ingress.auth("other"))
    assert other.status_code == 404


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "send an API key"),
        ({"authorization": "Bearer nope"}, "invalid API key"),
        ({"authorization": "Bearer sk_abcdef123456_wrongsecret"}, "invalid API key"),
    ],
)
async def test_bad_credentials_are_401(
    ingress: Ingress, headers: dict[str, str], detail: str
) -> None:
    """Missing, malformed and unknown keys are refused alike."""
    resp = await ingress.http.post(RUNS, json={"text": "x"}, headers=headers)
    assert resp.status_code == 401
    assert detail in resp.json()["detail"]
    assert resp.json()["correlation_id"] == resp.headers["x-correlation-id"]


async def test_revoked_key_is_refused(ingress: Ingress) -> None:
    """A revoked key stops working (at once in the process that revoked it, after cache TTL
    elsewhere)."""
    key_id = ingress.keys["other"].split("_")[1]
    assert await ingress.app.store.revoke_api_key(key_id)
    ingress.gateway.auth._cache.clear()  # the revoking process forgets its cached copy
    resp = await ingress.http.post(RUNS, json={"text": "x"}, headers=ingress.auth("other"))
    assert resp.status_code == 401


@pytest.mark.parametrize(
    ("kwargs", "status", "kind"),
    [
        ({"json": {"text": 3}}, 422, "invalid-input"),
        ({"content": b"{nope", "headers": {"content-type": "application/json"}}, 400,
         "malformed-json"),
        ({"content": b"text=hi", "headers": {"content-type": "text/plain"}}, 415,
         "unsupported-media-type"),
        ({"content": b"[" * (2 << 20), "headers": {"content-type": "application/json"}},
         413, "payload-too-large"),
        ({"content": b"[" * 40 + b"]" * 40, "headers": {"content-type": "application/json"}},
         413, "payload-too-complex"),
        ({"json": {"text": "x", "many": list(range(5000))}}, 413, "payload-too-complex"),
        ({"content": b"[" * 1100 + b"]" * 1100, "headers": {"content-type": "application/json"}},
         413, "payload-too-complex"),  # past the parser's own depth limit: the same answer
    ],
)  # fmt: skip
async def test_refusals_are_problem_documents(
    ingress: Ingress, kwargs: dict[str, object], status: int, kind: str
) -> None:
    """Each refusal has its status and a problem+json body with a stable type."""
    headers = {**ingress.auth(), **kwargs.pop("headers", {})}  # type: ignore[dict-item]  # the case holds a header dict
    resp = await ingress.http.post(RUNS, headers=headers, **kwargs)  # type: ignore[arg-type]  # httpx keywords of the case
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["type"].endswith("/" + kind)


async def test_invalid_input_lists_every_error_and_is_quarantined(ingress: Ingress) -> None:
    """422 carries every validation error; the payload is kept in quarantine."""
    resp = await ingress.http.post(RUNS, json={"text": "", "subject": 5}, headers=ingress.auth())
    assert resp.status_code == 422
    assert sorted(resp.json()["errors"]) == [
        "$.subject: expected string, got integer",
        "$.text: expected at least 1 chars, got string (0 chars)",
    ]
    (item,) = await ingress.app.store.list_quarantine()
    assert item.source == "api"
    assert len(item.problems) == 2


async def test_unknown_workflow_and_run(ingress: Ingress) -> None:
    """Unknown names are 404 problems."""
    resp = await ingress.http.post("/v1/workflows/nope/runs", json={}, headers=ingress.auth())
    assert resp.status_code == 404
    assert (await ingress.http.get("/v1/runs/nope", headers=ingress.auth())).status_code == 404


async def test_rate_limit_is_429_with_retry_after(ingress: Ingress) -> None:
    """A tenant past its bucket gets 429 and a Retry-After in whole seconds."""
    codes = []
    for i in range(3):
        resp = await ingress.http.post(RUNS, json={"text": str(i)}, headers=ingress.auth("slow"))
        codes.append(resp.status_code)
    assert codes == [202, 202, 429]
    assert int(resp.headers["retry-after"]) >= 1


async def test_full_queue_is_503_with_retry_after(ingress: Ingress) -> None:
    """With the first pool's queue at its limit (50), new runs get 503 and Retry-After."""
    await ingress.app.runtime.stop()  # no workers: the queue only fills
    codes = [
        (await ingress.http.post(RUNS, json={"text": str(i)}, headers=ingress.auth())).status_code
        for i in range(51)
    ]
    assert codes.count(202) == 50
    assert codes[-1] == 503
    resp = await ingress.http.post(RUNS, json={"text": "x"}, headers=ingress.auth())
    assert int(resp.headers["retry-after"]) >= 1


async def test_idempotency_key(ingress: Ingress) -> None:
    """The same key returns the same receipt; with another body it is a 409."""
    headers = {**ingress.auth(), "idempotency-key": "order-7"}
    first = await ingress.http.post(RUNS, json={"text": "a"}, headers=headers)
    again = await ingress.http.post(RUNS, json={"text": "a"}, headers=headers)
    assert again.json()["event_id"] == first.json()["event_id"]
    assert again.json()["duplicate"] is True
    clash = await ingress.http.post(RUNS, json={"text": "b"}, headers=headers)
    assert clash.status_code == 409
    # Keys are per tenant: another tenant may use the same key.
    other = await ingress.http.post(
        RUNS, json={"text": "a"}, headers={**ingress.auth("other"), "idempotency-key": "order-7"}
    )
    assert other.json()["event_id"] != first.json()["event_id"]


async def test_health_and_openapi(ingress: Ingress) -> None:
    """healthz is always ok; readyz reports the pools; the OpenAPI document lists the paths."""
    assert (await ingress.http.get("/healthz")).json() == {"status": "ok"}
    assert (await ingress.http.get("/readyz")).json()["pools"]["cpu"]["concurrency"] == 4
    doc = (await ingress.http.get("/openapi.json")).json()
    assert {"/v1/workflows/tickets/runs", "/v1/hooks/helpdesk", "/v1/runs/{event_id}"} <= set(
        doc["paths"]
    )
    body = doc["paths"]["/v1/workflows/tickets/runs"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["required"] == ["text"]


async def test_wait_is_bounded(ingress: Ingress) -> None:
    """A run that does not finish within ?wait answers 202, not a hung request."""
    await ingress.app.runtime.stop()
    resp = await asyncio.wait_for(
        ingress.http.post(f"{RUNS}?wait=0.3", json={"text": "x"}, headers=ingress.auth()), 5
    )
    assert resp.status_code == 202


async def _nothing_stored(ingress: Ingress) -> None:
    assert await ingress.app.store.list_events() == []
    assert await ingress.app.store.list_quarantine() == []
    assert await ingress.app.store.purge_idempotency(time.time() + 1) == 0  # no key kept


@pytest.mark.parametrize(
    ("key", "detail"),
    [
        ("", "Idempotency-Key is empty or blank: send 1 to 255 visible characters, or no header"),
        ("   ", "Idempotency-Key is empty or blank"),
        ("k" * 256, "Idempotency-Key is longer than 255 characters"),
        ("k" * (256 << 10), "Idempotency-Key is longer than 255 characters"),
    ],
    ids=["empty", "blank", "256-chars", "256-KB"],
)
async def test_a_blank_or_long_idempotency_key_is_400(
    ingress: Ingress, key: str, detail: str
) -> None:
    """A key must be 1 to 255 characters: blank keys would make unrelated requests collide
    and long ones would be stored verbatim. Refused before anything is written."""
    headers = {**ingress.auth(), "idempotency-key": key}
    resp = await ingress.http.post(RUNS, json={"text": "x"}, headers=headers)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["detail"].startswith(detail)
    await _nothing_stored(ingress)


async def test_an_idempotency_key_of_255_characters_is_kept(ingress: Ingress) -> None:
    """The limit is inclusive."""
    headers = {**ingress.auth(), "idempotency-key": "k" * 255}
    first = await ingress.http.post(RUNS, json={"text": "x"}, headers=headers)
    again = await ingress.http.post(RUNS, json={"text": "x"}, headers=headers)
    assert first.status_code == 202
    assert again.json() == {**first.json(), "duplicate": True}


@pytest.mark.parametrize("wait", ["nan", "NaN", "inf", "-inf", "-1", "30.5", "1e9", "soon", ""])
async def test_wait_outside_its_range_is_400(ingress: Ingress, wait: str) -> None:
    """?wait= takes seconds from 0 to 30; anything else is refused naming the range, and
    nothing is accepted."""
    resp = await ingress.http.post(
        RUNS, params={"wait": wait}, json={"text": "x"}, headers=ingress.auth()
    )
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["detail"].startswith("wait: a number of seconds from 0 to 30")
    await _nothing_stored(ingress)


@pytest.mark.parametrize("wait", ["0", "0.0", "30"])
async def test_wait_at_its_bounds_is_taken(ingress: Ingress, wait: str) -> None:
    """Both ends of the range are allowed."""
    resp = await ingress.http.post(
        RUNS, params={"wait": wait}, json={"text": "x"}, headers=ingress.auth()
    )
    assert resp.status_code in (200, 202)


@pytest.mark.parametrize("header", ["authorization", "idempotency-key"])
async def test_a_repeated_credential_or_key_header_is_400(ingress: Ingress, header: str) -> None:
    """Two Authorization or Idempotency-Key headers are refused, not resolved by taking the
    first; nothing is stored."""
    value = ingress.auth()["authorization"] if header == "authorization" else "order-1"
    headers = [*ingress.auth().items(), ("idempotency-key", "order-1"), (header, value)]
    resp = await ingress.http.post(RUNS, json={"text": "x"}, headers=headers)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["detail"] == f"the {header} header is sent more than once: send it once"
    await _nothing_stored(ingress)
    event = await ingress.http.post(RUNS, json={"text": "x"}, headers=ingress.auth())
    read = await ingress.http.get(
        f"/v1/runs/{event.json()['event_id']}", headers=[*ingress.auth().items()] * 2
    )
    assert read.status_code == 400


def test_the_depth_limit_stays_below_what_later_steps_can_write(make_app: MakeApp) -> None:
    """``ingress.max_depth`` past 128 is a config error: orjson reads 1,024 levels but writes
    only 254, and every later step writes back what was read."""
    app_dir = make_app(CONFIG.replace("runtime:", "ingress: {max_depth: 300}\nruntime:"), {})
    with pytest.raises(ConfigError, match="max_depth: from 1 to 128 levels"):
        parse_ingress(load_settings(app_dir))
