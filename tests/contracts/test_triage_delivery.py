"""The triage app's deliveries against its receiver's spec, on the real workflow and models.

The app is ``tests/examples``' small triage build (the real workflow, steps, routing and
templates; models trained on 12 tickets a label) with the triage contracts copied in.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from sluice.contracts.consumer import check_webhook
from sluice.contracts.manifest import load_contracts
from tests.contracts.conftest import TRIAGE
from tests.examples.test_triage import CONFIG, build_small_triage_app

EVENTS = 4


@pytest.mark.slow
async def test_triage_deliveries_conform_until_the_receiver_changes(tmp_path: Path) -> None:
    app = build_small_triage_app(tmp_path / "triage", CONFIG)
    shutil.copytree(TRIAGE / "contracts", app / "contracts")
    delivery = next(p for p in load_contracts(app).partners if p.name == "delivery")
    result = await check_webhook(app, delivery, events=EVENTS)
    assert result.passed, result.message
    assert result.figures == {
        "requests": EVENTS,
        "valid": EVENTS,
        "events": EVENTS,
        "states": {"done": EVENTS},
    }

    # The receiver now files tickets by an assignee that triage does not send.
    path = app / "contracts/partners/delivery.openapi.yaml"
    doc = yaml.safe_load(path.read_text())
    schema = doc["components"]["schemas"]["Delivery"]["properties"]["result"]
    schema["required"].append("assignee")
    path.write_text(yaml.safe_dump(doc))
    delivery = next(p for p in load_contracts(app).partners if p.name == "delivery")
    broken = await check_webhook(app, delivery, events=EVENTS)
    assert not broken.passed
    assert broken.message.startswith(
        f"consumer delivery (webhook, triage.deliver): 0/{EVENTS} requests valid against "
        f"delivery.openapi.yaml; 0/{EVENTS} events done; first problem: POST /hooks/triage: "
        "body $.result: 'assignee' is a required property"
    )
