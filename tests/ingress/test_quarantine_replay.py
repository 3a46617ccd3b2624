"""A replayed quarantine entry stays findable by the id its sender was given."""

from __future__ import annotations

import orjson

from sluice.app import SluiceApp
from sluice.config import AppSettings, load_settings
from sluice.ingress import intake
from sluice.ingress.apikeys import create_api_key
from sluice.ingress.settings import parse_ingress
from sluice.store.base import ApiKeyRecord
from tests.conftest import MakeApp
from tests.ingress.conftest import CONFIG, WORKFLOW, Ingress
from tests.ingress.test_apikey_lifecycle import serving

BODY = orjson.dumps({"ticket": {"body": "my card was stolen"}, "requester": {"email": "a@b.c"}})


async def test_replayed_entry_answers_for_its_first_id(make_app: MakeApp) -> None:
    """The server quarantines a delivery; another process replays it under a fixed mapping.
    The sender's id then shows the event, and a redelivery answers with the event."""
    app_dir = make_app(CONFIG, {"tickets.yaml": WORKFLOW})
    settings = load_settings(app_dir)
    async with serving(lambda: SluiceApp.from_settings(settings, run_pools=())) as http:
        headers = Ingress.signed(BODY, msg_id="msg_q")
        first = await http.post("/v1/hooks/helpdesk", content=BODY, headers=headers)
        assert first.json()["status"] == "quarantined"
        old_id = first.json()["event_id"]
        # The operator fixes the mapping and replays from the command line (another process).
        (app_dir / "sluice.yaml").write_text(
            CONFIG.replace("$.ticket.description", "$.ticket.body")
        )
        fixed = load_settings(app_dir)
        async with SluiceApp.from_settings(fixed, run_pools=()) as admin:
            receipt, problems = await intake.Ingress(
                admin, parse_ingress(fixed)
            ).replay_quarantined(old_id)
            assert problems == []
            assert receipt is not None
            _, key = await create_api_key(admin.store, "acme")
        auth = {"authorization": f"Bearer {key}"}
        shown = await http.get(f"/v1/runs/{old_id}", headers=auth)
        assert shown.status_code == 200, shown.text
        assert shown.json()["event_id"] == receipt.event_id
        assert shown.json()["replay_of"] == old_id
        assert shown.headers["content-location"] == f"/v1/runs/{receipt.event_id}"
        again = await http.post("/v1/hooks/helpdesk", content=BODY, headers=headers)
        assert again.status_code == 202
        assert again.json()["event_id"] == receipt.event_id
        assert again.json()["status"] != "quarantined"
        assert again.json()["duplicate"] is True
        # Another tenant's key does not find it by either id.
        _, other = await _key(fixed, "other")
        for eid in (old_id, receipt.event_id):
            resp = await http.get(f"/v1/runs/{eid}", headers={"authorization": f"Bearer {other}"})
            assert resp.status_code == 404


async def _key(settings: AppSettings, tenant: str) -> tuple[ApiKeyRecord, str]:
    async with SluiceApp.from_settings(settings, run_pools=()) as admin:
        return await create_api_key(admin.store, tenant)
