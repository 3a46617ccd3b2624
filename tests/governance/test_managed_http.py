"""Managed configuration over the HTTP admin API, on SQLite and PostgreSQL: who may do what
(a viewer cannot set a secret: 403 problem+json, nothing changed, nothing audited), what each
change leaves in the audit trail, and that no answer carries a secret's value."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sluice.governance import create_principal, issue_token
from sluice.guard.crypto import new_key
from sluice.testing import TestApp
from tests.conftest import MakeApp
from tests.store.conftest import drop_test_schema, new_schema, postgres_schema_url

VALUE = "whsec_9bT2kLq0Vx7Pz"
CONFIG = """
    pools:
      cpu: {concurrency: 2}
"""
WORKFLOW = """
    name: noop
    version: 1
    steps:
      - {name: keep, pool: cpu, uses: noop}
"""
TEMPLATE = """
system: You greet people.
user: "Say hello to {{ name }}."
variables:
  name: {type: string}
"""


@dataclass
class Admin:
    """The app over HTTP and a token per role."""

    app: TestApp
    tokens: dict[str, str]

    def headers(self, role: str, why: str = "") -> dict[str, str]:
        """The Authorization header of ``role``'s principal (and a reason)."""
        out = {"Authorization": f"Bearer {self.tokens[role]}"}
        if why:
            out["X-Sluice-Reason"] = why
        return out

    async def audit(self) -> list[dict[str, Any]]:
        """The audit trail, as an admin reads it."""
        resp = await self.app.http.get("/v1/admin/audit", headers=self.headers("admin"))
        assert resp.status_code == 200, resp.text
        entries: list[dict[str, Any]] = resp.json()
        return entries


@pytest.fixture(params=["sqlite", "postgres"])
async def admin(request: pytest.FixtureRequest, make_app: MakeApp) -> AsyncIterator[Admin]:
    """The app on a fresh store of each kind, with an encryption keyring, and one principal
    (and token) per built-in role."""
    app_dir = make_app(CONFIG, {"noop.yaml": WORKFLOW})
    environ = {**os.environ, "SLUICE_ENCRYPTION_KEYS": f"k1={new_key()}",
               "SLUICE_ENCRYPTION_ACTIVE": "k1"}  # fmt: skip
    schema = new_schema() if request.param == "postgres" else None
    store = None if schema is None else postgres_schema_url(schema)
    try:
        async with TestApp(app_dir, store=store, environ=environ) as app:
            tokens = {}
            for role in ("admin", "developer", "viewer", "operator", "release_manager"):
                principal = await create_principal(app.app.store, f"p-{role}", roles=[role])
                tokens[role] = (await issue_token(app.app.store, principal))[1]
            yield Admin(app, tokens)
    finally:
        if schema is not None:
            await drop_test_schema(schema)


async def _put_secret(admin: Admin, role: str, value: str = VALUE) -> httpx.Response:
    return await admin.app.http.put(
        "/v1/admin/secrets/partner", json={"value": value}, headers=admin.headers(role, "setup")
    )


async def test_a_viewer_cannot_set_a_secret(admin: Admin) -> None:
    """403 problem+json naming the permission; no secret stored, nothing audited."""
    before = await admin.audit()
    for role in ("viewer", "developer", "operator", "release_manager"):
        resp = await _put_secret(admin, role)
        assert resp.status_code == 403, (role, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        assert "secrets:write" in resp.json()["detail"]
        assert VALUE not in resp.text
    assert await admin.app.app.store.secret_versions() == []
    assert await admin.audit() == before


async def test_an_admin_sets_rotates_and_deletes_audited(admin: Admin) -> None:
    """Set twice (two versions), read metadata as a viewer, rotate, delete: each change is one
    audit entry with the actor, the reason and digests; no answer holds the value."""
    first, second = await _put_secret(admin, "admin"), await _put_secret(admin, "admin", "v2")
    assert first.status_code == second.status_code == 200
    assert second.json()["latest"] == 2
    listed = await admin.app.http.get("/v1/admin/secrets", headers=admin.headers("viewer"))
    shown = await admin.app.http.get("/v1/admin/secrets/partner", headers=admin.headers("viewer"))
    assert listed.status_code == shown.status_code == 200
    assert [s["name"] for s in listed.json()] == ["partner"]
    assert [v["version"] for v in shown.json()["versions"]] == [1, 2]
    rotated = await admin.app.http.post("/v1/admin/secrets/rotate", headers=admin.headers("admin"))
    assert rotated.json() == {"rewrapped": 0}  # already under the active key: nothing to do
    secrets = admin.app.app.services["secrets"]
    assert (await secrets.get("partner", 1)).reveal() == VALUE
    gone = await admin.app.http.delete("/v1/admin/secrets/partner", headers=admin.headers("admin"))
    assert gone.json() == {"name": "partner", "deleted_versions": 2}
    again = await admin.app.http.delete("/v1/admin/secrets/partner", headers=admin.headers("admin"))
    assert again.status_code == 404
    for resp in (first, second, listed, shown, rotated, gone):
        assert VALUE not in resp.text
    entries = [e for e in await admin.audit() if e["resource"].startswith("secret/")]
    assert [(e["action"], e["actor"], e["source"]) for e in entries] == [
        ("secret.set", "p-admin", "http"),
        ("secret.set", "p-admin", "http"),
        ("secret.rotate", "p-admin", "http"),
        ("secret.delete", "p-admin", "http"),
    ]
    assert entries[0]["before"] is None
    assert entries[0]["after"] is not None
    assert entries[0]["why"] == "setup"
    assert all(VALUE not in str(e) for e in entries)


async def test_templates_over_http(admin: Admin) -> None:
    """A developer pushes (201, then 200 for the same version), a viewer lists, shows and
    diffs; a viewer's push is 403; a bad template is 422 naming its problems."""
    http, body = admin.app.http, {"name": "greet", "source": TEMPLATE}
    refused = await http.post("/v1/admin/templates", json=body, headers=admin.headers("viewer"))
    assert refused.status_code == 403
    first = await http.post("/v1/admin/templates", json=body, headers=admin.headers("developer"))
    again = await http.post("/v1/admin/templates", json=body, headers=admin.headers("developer"))
    changed = {"name": "greet", "source": TEMPLATE.replace("hello", "hi")}
    other = await http.post("/v1/admin/templates", json=changed,
                            headers=admin.headers("developer"))  # fmt: skip
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    a, b = first.json()["id"], other.json()["id"]
    listed = await http.get("/v1/admin/templates?name=greet", headers=admin.headers("viewer"))
    assert [t["id"] for t in listed.json()] == [a, b]
    shown = await http.get(f"/v1/admin/templates/{a}", headers=admin.headers("viewer"))
    assert shown.json()["source"] == TEMPLATE
    diff = await http.get(f"/v1/admin/templates/diff?a={a}&b={b}", headers=admin.headers("viewer"))
    assert '-user: "Say hello to {{ name }}."' in diff.json()["diff"]
    bad = {"name": "broken", "source": "user: 'Hi {{ who }}'"}
    invalid = await http.post("/v1/admin/templates", json=bad, headers=admin.headers("developer"))
    assert invalid.status_code == 422
    assert any("who" in p for p in invalid.json()["errors"])
    pushes = [e for e in await admin.audit() if e["action"] == "template.push"]
    assert [e["resource"] for e in pushes] == [f"template/{a}", f"template/{b}"]


async def test_routing_over_http(admin: Admin) -> None:
    """A release manager sets the rules (a new version, audited with before and after); a
    viewer reads them and cannot set them; invalid rules are 422 with every problem's path."""
    http = admin.app.http
    rules = {"tenants": {"acme": {"models": ["small"]}}}
    refused = await http.put("/v1/admin/routing", json=rules, headers=admin.headers("viewer"))
    assert refused.status_code == 403
    done = await http.put("/v1/admin/routing", json=rules,
                          headers=admin.headers("release_manager"))  # fmt: skip
    assert done.status_code == 200
    assert (done.json()["version"], done.json()["rules"]) == (1, rules)
    shown = await http.get("/v1/admin/routing", headers=admin.headers("viewer"))
    assert shown.json()["created_by"] == "p-release_manager"
    bad = {"tenants": {"acme": {"model": ["x"]}}, "users": {}}
    invalid = await http.put("/v1/admin/routing", json=bad, headers=admin.headers("admin"))
    assert invalid.status_code == 422
    assert set(invalid.json()["errors"]) == {
        "routing.users: unknown section (known: tenants, workflows, keys)",
        "routing.tenants.acme.model: unknown key (known: models, providers)",
    }
    (entry,) = [e for e in await admin.audit() if e["action"] == "routing.set"]
    assert entry["before"] is not None
    assert entry["after"] is not None


def test_managed_routes_are_rows_of_the_route_table() -> None:
    """The managed routes are rows of the one route table, each with its permission."""
    from sluice.ingress.admin import ADMIN_ROUTES

    managed = {(r.method, r.path): r.permission.value for r in ADMIN_ROUTES
               if r.path.startswith(("/v1/admin/secrets", "/v1/admin/templates",
                                     "/v1/admin/routing"))}  # fmt: skip
    assert managed == {
        ("GET", "/v1/admin/secrets"): "secrets:read-metadata",
        ("POST", "/v1/admin/secrets/rotate"): "secrets:write",
        ("GET", "/v1/admin/secrets/{name}"): "secrets:read-metadata",
        ("PUT", "/v1/admin/secrets/{name}"): "secrets:write",
        ("DELETE", "/v1/admin/secrets/{name}"): "secrets:write",
        ("GET", "/v1/admin/templates"): "prompts:read",
        ("POST", "/v1/admin/templates"): "prompts:write",
        ("GET", "/v1/admin/templates/diff"): "prompts:read",
        ("GET", "/v1/admin/templates/{ref}"): "prompts:read",
        ("GET", "/v1/admin/routing"): "routing:read",
        ("PUT", "/v1/admin/routing"): "routing:write",
    }
