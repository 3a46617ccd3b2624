"""Consumer checks: the app's requests to its partners against the partners' specs."""

from __future__ import annotations

from pathlib import Path

import yaml

from sluice.contracts.consumer import check_openai, check_webhook
from sluice.contracts.manifest import load_contracts

EVENTS = 4


async def test_the_deliveries_of_a_running_app_conform_to_the_receivers_spec(
    tiny_app: Path,
) -> None:
    [ledger] = load_contracts(tiny_app).partners
    result = await check_webhook(tiny_app, ledger, events=EVENTS)
    assert result.passed, result.message
    assert result.figures == {
        "requests": EVENTS,
        "valid": EVENTS,
        "events": EVENTS,
        "states": {"done": EVENTS},
    }
    assert result.message == (
        f"consumer ledger (webhook, orders.deliver): {EVENTS}/{EVENTS} requests valid against "
        f"ledger.yaml; {EVENTS}/{EVENTS} events done"
    )


async def test_a_receiver_whose_spec_changed_fails_the_consumer_check(tiny_app: Path) -> None:
    """The ledger now wants result.currency: the app does not send it, every delivery is
    refused (422) and the check names the field and the figures."""
    path = tiny_app / "contracts/partners/ledger.yaml"
    doc = yaml.safe_load(path.read_text())
    body = doc["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]
    result_schema = body["schema"]["properties"]["result"]
    result_schema["required"].append("currency")
    result_schema["properties"]["currency"] = {"enum": ["EUR", "USD"]}
    path.write_text(yaml.safe_dump(doc))
    [ledger] = load_contracts(tiny_app).partners
    result = await check_webhook(tiny_app, ledger, events=EVENTS)
    assert not result.passed
    assert result.figures["requests"] == EVENTS
    assert result.figures["valid"] == 0
    assert result.figures["states"] == {"dead": EVENTS}  # a 422 is not retried
    assert result.message.startswith(
        f"consumer ledger (webhook, orders.deliver): 0/{EVENTS} requests valid against "
        f"ledger.yaml; 0/{EVENTS} events done; first problem: POST /orders: body $.result: "
        "'currency' is a required property"
    )


async def test_the_model_clients_requests_conform_to_the_chat_spec(triage_copy: Path) -> None:
    [llm] = [p for p in load_contracts(triage_copy).partners if p.client == "openai"]
    result = await check_openai(triage_copy, llm)
    assert result.passed, result.message
    # classify, a tool call, the draft_reply template, the model listing
    assert result.figures["calls"] == result.figures["requests"] == result.figures["valid"] == 4


async def test_a_chat_endpoint_without_structured_output_fails_the_consumer_check(
    triage_copy: Path,
) -> None:
    """A provider whose API takes no response_format refuses Sluice's classification and
    draft requests: the check names the field."""
    path = triage_copy / "contracts/partners/openai-chat.openapi.yaml"
    doc = yaml.safe_load(path.read_text())
    del doc["components"]["schemas"]["ChatRequest"]["properties"]["response_format"]
    path.write_text(yaml.safe_dump(doc))
    [llm] = [p for p in load_contracts(triage_copy).partners if p.client == "openai"]
    result = await check_openai(triage_copy, llm)
    assert not result.passed
    assert result.figures["requests"] == 4
    assert result.figures["valid"] == 2
    assert result.problems[0] == (
        "POST /v1/chat/completions: body $: Additional properties are not allowed "
        "('response_format' was unexpected)"
    )
    assert "2/4 requests valid against openai-chat.openapi.yaml" in result.message
