"""Reloading the way in without a restart: the admin call and SIGHUP apply a changed source
mapping to new webhooks; an invalid file changes nothing and says why."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import orjson

from sluice.ingress.apikeys import OPERATOR_ROLE, create_api_key
from tests.ingress.conftest import Ingress
from tests.ingress.serving import sluice_serve

HOOK = "/v1/hooks/helpdesk"
RENAMED = ("text: $.ticket.description", "text: $.ticket.body")


def _delivery(field: str, text: str) -> bytes:
    return orjson.dumps({"ticket": {field: text, "subject": "s"}, "requester": {"email": "a@b"}})


def _config(app_dir: Path) -> Path:
    return app_dir / "sluice.yaml"


async def test_the_admin_call_applies_a_new_mapping_and_keeps_the_old_one_on_error(
    ingress: Ingress,
) -> None:
    config = _config(ingress.app.settings.app_dir)
    _, operator = await create_api_key(ingress.app.store, "ops", roles=[OPERATOR_ROLE])
    ops = {"authorization": f"Bearer {operator}"}

    before = _delivery("body", "my card was stolen")
    quarantined = await ingress.http.post(HOOK, content=before, headers=ingress.signed(before))
    assert quarantined.json()["status"] == "quarantined"  # no description: no text

    config.write_text(config.read_text().replace(*RENAMED))
    denied = await ingress.http.post("/v1/admin/reload", headers=ingress.auth("acme"))
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    reloaded = await ingress.http.post("/v1/admin/reload", headers=ops)
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json() == {"reloaded": True, "changes": ["sources.helpdesk: changed"]}

    after = _delivery("body", "my card was stolen")
    headers = ingress.signed(after, msg_id="msg_2")
    accepted = await ingress.http.post(HOOK, content=after, headers=headers)
    assert accepted.status_code == 202, accepted.text
    record = await ingress.app.runtime.wait(accepted.json()["event_id"], 5)
    assert orjson.loads(record.input)["text"] != ""

    # A broken file: 422 naming the problem, and the mapping in force stays.
    config.write_text(config.read_text().replace("tenant: acme", "tenant: acme\n    tenat: x"))
    broken = await ingress.http.post("/v1/admin/reload", headers=ops)
    assert broken.status_code == 422
    assert any("sources.helpdesk.tenat: unknown setting" in e for e in broken.json()["errors"])
    again = _delivery("body", "still mapped")
    headers = ingress.signed(again, msg_id="msg_3")
    assert (await ingress.http.post(HOOK, content=again, headers=headers)).status_code == 202


def test_sighup_reloads_every_serving_process(tmp_path: Path) -> None:
    """With --processes 2, the supervisor hands SIGHUP to each process, which reloads."""
    with sluice_serve(tmp_path, "--processes", "2") as served:
        config = _config(tmp_path)
        config.write_text(config.read_text().replace(*RENAMED))
        os.kill(served.proc.pid, signal.SIGHUP)
        # Each delivery lands on either process (SO_REUSEPORT): all must map the new field.
        deadline = time.monotonic() + 30
        results: list[str] = []
        for n in range(20):
            body = _delivery("body", f"ticket {n}")
            headers = Ingress.signed(body, msg_id=f"hup_{n}")
            while True:
                status = httpx.post(f"{served.url}{HOOK}", content=body, headers=headers).json()
                if status["status"] == "accepted" or time.monotonic() > deadline:
                    break
                time.sleep(0.2)  # a process still on the old mapping quarantined it
                headers = Ingress.signed(body, msg_id=f"hup_{n}_{time.monotonic()}")
            results.append(status["status"])
        assert results == ["accepted"] * 20
        assert served.alive()
