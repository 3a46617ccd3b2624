"""Ingress administration from the command line: quarantine replay, keys, key rotation."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.ingress.intake import Ingress
from sluice.ingress.settings import parse_ingress
from sluice.outbound.signing import decode_secret, sign
from tests.cli.test_cli_runtime import sluice
from tests.conftest import MakeApp

SECRET = "whsec_" + base64.b64encode(b"s" * 24).decode()
K1 = base64.b64encode(b"1" * 32).decode()
K2 = base64.b64encode(b"2" * 32).decode()
CONFIG = """
store: sqlite:///.sluice/admin.db
pools: {{cpu: {{concurrency: 2}}}}
encryption: {{active: {active}, keys: {{{keys}}}}}
sources:
  desk:
    workflow: tickets
    tenant: acme
    secrets: [{secret}]
    mapping: {{text: {path}}}
"""
WORKFLOW = """
name: tickets
input_schema: {type: object, required: [text], properties: {text: {type: string}}}
steps: [{name: keep, pool: cpu, uses: noop}]
"""


def _config(path: str = "$.ticket.body", active: str = "k1", keys: str = f"k1: {K1}") -> str:
    return CONFIG.format(active=active, keys=keys, secret=SECRET, path=path)


async def _deliver(app_dir: Path, bodies: list[bytes]) -> list[str]:
    settings = load_settings(app_dir)
    async with SluiceApp.from_settings(settings, run_pools=()) as app:
        gateway = Ingress(app, parse_ingress(settings))
        ids = []
        for i, body in enumerate(bodies):
            stamp = int(time.time())
            headers = {
                "webhook-id": f"m{i}",
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign(decode_secret(SECRET), f"m{i}", stamp, body),
            }
            ids.append((await gateway.webhook("desk", headers, body)).event_id)
        return ids


async def test_fixing_the_mapping_and_replaying_recovers_events(make_app: MakeApp) -> None:
    """Events quarantined by a wrong mapping are accepted once the mapping is fixed."""
    app_dir = make_app(_config(), {"tickets.yaml": WORKFLOW})
    bodies = [orjson.dumps({"ticket": {"description": f"card lost {i}"}}) for i in range(3)]
    ids = await _deliver(app_dir, bodies)
    listed = sluice("quarantine", "list", "--app", str(app_dir))
    assert all(i in listed.stdout for i in ids)
    assert "$.ticket.body not found" in listed.stdout
    shown = json.loads(sluice("quarantine", "show", ids[0], "--app", str(app_dir)).stdout)
    assert shown["payload"] == {"ticket": {"description": "card lost 0"}}
    still = sluice("quarantine", "replay", "--all", "--app", str(app_dir))
    assert still.returncode == 1
    assert "still malformed" in still.stderr
    (app_dir / "sluice.yaml").write_text(_config(path="$.ticket.description"))
    fixed = sluice("quarantine", "replay", "--all", "--app", str(app_dir))
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.count("accepted as event") == 3
    assert sluice("quarantine", "list", "--app", str(app_dir)).stdout == ""
    assert sluice("runs", "list", "--app", str(app_dir)).stdout.count("tickets@1  accepted") == 3


async def test_drop(make_app: MakeApp) -> None:
    """Dropped entries are gone; dropping again reports it."""
    app_dir = make_app(_config(), {"tickets.yaml": WORKFLOW})
    (qid,) = await _deliver(app_dir, [b'{"ticket": {}}'])
    assert sluice("quarantine", "drop", qid, "--app", str(app_dir)).returncode == 0
    again = sluice("quarantine", "drop", qid, "--app", str(app_dir))
    assert again.returncode == 1
    assert "not in quarantine" in again.stderr


async def test_key_rotation_rewrites_every_payload(make_app: MakeApp) -> None:
    """After rotating to k2, the old key can be removed and everything still reads."""
    app_dir = make_app(_config(path="$.ticket.description"), {"tickets.yaml": WORKFLOW})
    ids = await _deliver(app_dir, [orjson.dumps({"ticket": {"description": "hello"}})] * 1)
    (app_dir / "sluice.yaml").write_text(
        _config(path="$.ticket.description", active="k2", keys=f"k1: {K1}, k2: {K2}")
    )
    rotated = sluice("encryption", "rotate", "--app", str(app_dir))
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted 2 payloads" in rotated.stdout  # the event input and its first job
    again = sluice("encryption", "rotate", "--app", str(app_dir))
    assert "re-encrypted 0 payloads" in again.stdout
    (app_dir / "sluice.yaml").write_text(
        _config(path="$.ticket.description", active="k2", keys=f"k2: {K2}")
    )
    shown = sluice("runs", "show", ids[0], "--app", str(app_dir))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "accepted"


def test_apikey_lifecycle(make_app: MakeApp) -> None:
    """create prints the key once; list shows it; revoke marks it."""
    app_dir = make_app(_config(), {"tickets.yaml": WORKFLOW})
    created = sluice("apikey", "create", "--tenant", "acme", "--app", str(app_dir))
    key = created.stdout.strip()
    assert key.startswith("sk_")
    key_id = key.split("_")[1]
    assert f"{key_id}  acme  runner" in sluice("apikey", "list", "--app", str(app_dir)).stdout
    assert sluice("apikey", "revoke", key_id, "--app", str(app_dir)).returncode == 0
    assert sluice("apikey", "revoke", key_id, "--app", str(app_dir)).returncode == 1
    # The secret is not stored anywhere in the database.
    db = app_dir / ".sluice" / "admin.db"
    raw = b"".join(p.read_bytes() for p in db.parent.iterdir())
    assert key.split("_", 2)[2].encode() not in raw


def test_apikey_expiry_and_role(make_app: MakeApp) -> None:
    """--expires-in / --expires-at set an expiry that list shows; --role operator is kept;
    unknown roles and unreadable times are refused."""
    app_dir = make_app(_config(), {"tickets.yaml": WORKFLOW})
    app = ("--app", str(app_dir))
    month = sluice("apikey", "create", "--tenant", "acme", "--expires-in", "30d", *app)
    assert month.returncode == 0, month.stderr
    assert "expires" in month.stderr
    dated = sluice("apikey", "create", "--tenant", "ops", "--role", "operator",
                   "--expires-at", "2099-01-31T18:00:00Z", *app)  # fmt: skip
    assert dated.returncode == 0, dated.stderr
    listed = sluice("apikey", "list", *app).stdout
    month_id, dated_id = (r.stdout.strip().split("_")[1] for r in (month, dated))
    in_30_days = datetime.fromtimestamp(time.time() + 30 * 86_400, UTC).strftime("%Y-%m-%d")
    assert f"{month_id}  acme  runner" in listed
    assert f"expires {in_30_days}" in listed
    assert f"{dated_id}  ops  operator" in listed
    assert "expires 2099-01-31 18:00" in listed
    bad_role = sluice("apikey", "create", "--tenant", "a", "--role", "root", *app)
    assert bad_role.returncode == 2
    assert "unknown role" in bad_role.stderr
    bad_time = sluice("apikey", "create", "--tenant", "a", "--expires-in", "soon", *app)
    assert bad_time.returncode == 2
    assert "--expires-in" in bad_time.stderr


async def test_replay_that_still_fails_records_the_new_reason(make_app: MakeApp) -> None:
    """An entry still malformed after a replay shows today's problem in list and show."""
    app_dir = make_app(_config(), {"tickets.yaml": WORKFLOW})
    [item_id] = await _deliver(app_dir, [orjson.dumps({"ticket": {"description": "hi"}})])
    (app_dir / "sluice.yaml").write_text(_config(path="$.ticket.text"))
    assert sluice("quarantine", "replay", item_id, "--app", str(app_dir)).returncode == 1
    listed = sluice("quarantine", "list", "--app", str(app_dir)).stdout
    assert "$.ticket.text not found" in listed
    assert "$.ticket.body" not in listed
    shown = json.loads(sluice("quarantine", "show", item_id, "--app", str(app_dir)).stdout)
    assert shown["reason"].endswith("$.ticket.text not found in the payload")
    assert all("$.ticket.body" not in p for p in shown["problems"])
