"""Every identity x every governed HTTP route, generated from the route table and the role
table: allowed requests succeed and are audited; all others are 403 problem+json and change
nothing in the store (every table compared) or the live index."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.config import load_settings
from sluice.ingress import intake
from sluice.ingress.admin import ADMIN_ROUTES, AdminRoute
from sluice.ingress.settings import parse_ingress
from tests.conftest import MakeApp
from tests.governance.matrix import (
    CONFIG,
    IDENTITIES,
    KEYRING,
    WORKFLOW,
    Targets,
    credential,
    dump,
    empty_index,
    may,
    targets,
    template_source,
)


@dataclass
class Served:
    http: httpx.AsyncClient
    app: SluiceApp
    db: Path


@pytest.fixture
async def served(make_app: MakeApp) -> AsyncIterator[Served]:
    """The app with no worker pools (dead runs stay dead), behind the real HTTP app."""
    app_dir = make_app(CONFIG, {"tickets.yaml": WORKFLOW})
    empty_index(app_dir)
    settings = load_settings(app_dir, {**os.environ, **KEYRING})  # secrets need a keyring
    app = SluiceApp.from_settings(settings, run_pools=())
    gateway = intake.Ingress(app, parse_ingress(settings))
    await app.start()
    transport = httpx.ASGITransport(app=create_http_app(app, gateway))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield Served(http, app, app_dir / ".sluice" / "governance.db")
    finally:
        await app.stop()


def _request(route: AdminRoute, t: Targets) -> tuple[str, dict[str, object] | None]:
    """The concrete path and JSON body of a request that succeeds when allowed."""
    values = {"key_id": t.key_id, "item_id": t.item_id, "event_id": t.event_id,
              "name": t.principal, "seq": str(t.seq), "role": "viewer",
              "token_id": t.token_id, "ref": t.template}  # fmt: skip
    if route.path.startswith("/v1/admin/secrets/"):
        values["name"] = t.secret
    path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m[1]], route.path)
    if route.path == "/v1/admin/templates/diff":
        path += f"?a={t.template}&b={t.template}"
    if route.path.endswith("/roles/{role}"):
        who = t.principal if route.method == "PUT" else t.holder
        path = f"/v1/admin/principals/{who}/roles/viewer"
    bodies: dict[str, dict[str, object]] = {
        "/v1/admin/apikeys": {"tenant": "acme"},
        "/v1/admin/principals": {"name": t.new_name, "roles": ["viewer"]},
        "/v1/admin/principals/{name}/tokens": {},
        "/v1/admin/secrets/{name}": {"value": "new-" + t.secret},
        "/v1/admin/templates": {"name": "greet", "source": template_source(t.new_name)},
        "/v1/admin/routing": {"tenants": {"acme": {"models": ["small"]}}},
        "/v1/indexes/{name}/items": {"items": [
            {"id": "i1", "text": "my card is lost", "intent": "lost", "resolution": "freeze"}
        ]},
    }  # fmt: skip
    if route.path == "/v1/indexes/{name}/items":
        path = "/v1/indexes/faq/items"
    return path, bodies.get(route.path) if route.body else None


@pytest.mark.parametrize("identity", IDENTITIES)
async def test_every_route_for_every_identity(served: Served, identity: str) -> None:
    """The route table's permission, held or not, decides every answer."""
    token = await credential(served.app.store, identity)
    auth = {"authorization": f"Bearer {token}", "x-sluice-reason": "matrix"}
    index = served.app.services["indexes"]["faq"]
    wrong: list[str] = []
    for route in ADMIN_ROUTES:
        t = await targets(served.app.store)
        path, body = _request(route, t)
        before, size = dump(served.db), len(index)
        head, _ = await served.app.store.audit_head()
        resp = await served.http.request(route.method, path, json=body, headers=auth)
        case = f"{identity} {route.method} {path} -> {resp.status_code} {resp.text[:160]}"
        changes = route.method != "GET"
        if may(identity, route.permission):
            if resp.status_code not in (200, 201):
                wrong.append(f"allowed but refused: {case}")
            entries = await served.app.store.audit_entries(after=head)
            if changes and [e.source for e in entries] != ["http"]:
                wrong.append(f"change not audited once: {case}")
            if changes and entries and entries[0].why != "matrix":
                wrong.append(f"reason not recorded: {case}")
            continue
        problem = resp.json() if resp.status_code == 403 else {}
        if (resp.status_code, resp.headers.get("content-type")) != (
            403,
            "application/problem+json",
        ) or problem.get("type") != "https://sluice.dev/problems/forbidden":
            wrong.append(f"not a 403 problem: {case}")
        if dump(served.db) != before or len(index) != size:
            wrong.append(f"refused but changed the store: {case}")
    assert wrong == []


async def test_no_credentials_are_401_and_change_nothing(served: Served) -> None:
    """Without credentials (or with a bad token) every route is 401 before anything else."""
    t = await targets(served.app.store)
    before = dump(served.db)
    for route in ADMIN_ROUTES:
        path, body = _request(route, t)
        for headers in ({}, {"authorization": "Bearer sp_nope_nope"}):
            resp = await served.http.request(route.method, path, json=body, headers=headers)
            assert resp.status_code == 401, (route.path, resp.text)
    assert dump(served.db) == before


async def test_a_disabled_principals_token_stops_working(served: Served) -> None:
    """Disabling an admin through the API turns its token away at once."""
    admin = await credential(served.app.store, "admin")
    other = await credential(served.app.store, "operator")
    auth = {"authorization": f"Bearer {other}"}
    assert (await served.http.get("/v1/admin/principals", headers=auth)).status_code == 200
    resp = await served.http.post(
        "/v1/admin/principals/as-operator/disable", headers={"authorization": f"Bearer {admin}"}
    )
    assert resp.status_code == 200, resp.text
    assert (await served.http.get("/v1/admin/principals", headers=auth)).status_code == 401


async def test_a_revoked_token_stops_working(served: Served) -> None:
    """Revoking one token of a principal turns that token away and leaves its others."""
    admin = {"authorization": f"Bearer {await credential(served.app.store, 'admin')}"}
    made = await served.http.post("/v1/admin/principals", json={"name": "svc", "kind": "service",
                                                                "roles": ["viewer"]},
                                  headers=admin)  # fmt: skip
    assert made.status_code == 201, made.text
    one, two = [
        (await served.http.post("/v1/admin/principals/svc/tokens", json={}, headers=admin)).json()
        for _ in range(2)
    ]
    gone = await served.http.delete(f"/v1/admin/principals/svc/tokens/{one['token_id']}",
                                    headers=admin)  # fmt: skip
    assert gone.status_code == 200, gone.text
    again = await served.http.delete(f"/v1/admin/principals/svc/tokens/{one['token_id']}",
                                     headers=admin)  # fmt: skip
    assert again.status_code == 409
    roles = "/v1/admin/roles"
    refused = await served.http.get(roles, headers={"authorization": f"Bearer {one['token']}"})
    assert refused.status_code == 401
    assert refused.json()["detail"] == f"token {one['token_id']} was revoked"
    kept = await served.http.get(roles, headers={"authorization": f"Bearer {two['token']}"})
    assert kept.status_code == 403  # a viewer's token: known, without roles:read
