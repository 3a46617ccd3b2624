"""The HTTP admin API under ``/v1/admin/...`` (and the index-items route), governed in one
place: :data:`ADMIN_ROUTES` names each route's permission, and :func:`_endpoint` is the one
door every request of them passes: authenticate (a principal's ``sp_...`` token or an API
key, whose ``runner``/``operator`` role is its role), check the route's permission (403
problem+json otherwise, before anything is read or written), then run the handler, whose
changes go through :meth:`~sluice.governance.Authorized.change` and so into the audit trail
under that same permission. ``X-Sluice-Reason`` gives the ``why`` of the audit entries.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.app import SluiceApp
from sluice.errors import ConfigError, NotFoundError, SluiceError
from sluice.governance import (
    ROLES,
    Authorized,
    Change,
    Gate,
    Permission,
    Principal,
    authenticate_token,
    gate_for,
    principal_from_api_key,
)
from sluice.governance.principals import TOKEN_PREFIX
from sluice.ingress import admin_actions as actions
from sluice.ingress import managed_admin as managed
from sluice.ingress.http import read_body, refusal
from sluice.ingress.index_deltas import MAX_ITEMS, apply_delta
from sluice.ingress.intake import Ingress
from sluice.ingress.limits import Limits, RequestError, check_single, read_json
from sluice.ingress.problems import problem
from sluice.ingress.reload import reload_ingress
from sluice.ingress.settings import IngressSettings

_MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Call:
    """One admitted admin request: the app, the ingress, the door it came in by, its JSON
    body (None for routes without one) and its path parameters."""

    app: SluiceApp
    ingress: Ingress
    door: Authorized
    body: Any
    params: dict[str, Any]
    query: dict[str, str]


Handler = Callable[[Call], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True, slots=True)
class AdminRoute:
    """A governed route: method, path, the permission it needs, its handler, whether it reads
    a JSON body, and a summary for the OpenAPI document."""

    method: str
    path: str
    permission: Permission
    handler: Handler
    summary: str
    body: bool = False
    #: Whether the body is an index delta, wider than an event may be.
    wide: bool = False


async def principal_for(request: Request, ingress: Ingress, gate: Gate) -> Principal:
    """Who sends the request: a principal's token or an API key (AuthError otherwise)."""
    header = request.headers.get("authorization")
    if header and header.startswith("Bearer " + TOKEN_PREFIX):
        return await authenticate_token(gate.audit.store, header[len("Bearer ") :].strip())
    return principal_from_api_key(await ingress.auth.authenticate(header))


def _gate(request: Request) -> Gate:
    state = request.app.state
    gate: Gate | None = getattr(state, "gate", None)
    if gate is None:
        gate = state.gate = gate_for(state.sluice.store)
    return gate


def _refusal(exc: SluiceError, cid: str) -> Response:
    """The ingress's refusals (403 for Forbidden among them), and 422 for a bad admin body."""
    if isinstance(exc, ConfigError):
        return problem(422, "invalid-request", "Invalid Request", str(exc).splitlines()[0],
                       errors=exc.problems, correlation_id=cid)  # fmt: skip
    return refusal(exc, cid)


def _endpoint(route: AdminRoute) -> Callable[[Request], Awaitable[Response]]:
    """The one door of every governed route (see the module docstring)."""

    async def endpoint(request: Request) -> Response:
        app: SluiceApp = request.app.state.sluice
        ingress: Ingress = request.app.state.ingress
        cid = request.state.cid
        gate = _gate(request)
        try:
            check_single(request.headers.raw)
            principal = await principal_for(request, ingress, gate)
            why = request.headers.get("x-sluice-reason", "")
            door = gate.enter(principal, route.permission, "http", why)
        except SluiceError as exc:
            return _refusal(exc, cid)
        data: Any = None
        if route.body:
            raw = await read_body(request, ingress.settings.limits, cid)
            if isinstance(raw, Response):
                return raw
            limits = ingress.settings.limits
            try:
                data = read_json(raw, _delta_limits(limits) if route.wide else limits)
            except SluiceError as exc:
                return _refusal(exc, cid)
        call = Call(app, ingress, door, data, dict(request.path_params),
                    dict(request.query_params))  # fmt: skip
        try:
            status, answer = await route.handler(call)
        except SluiceError as exc:
            return _refusal(exc, cid)
        return Response(orjson.dumps(answer), status, media_type="application/json")

    return endpoint


@functools.cache
def _delta_limits(limits: Limits) -> Limits:
    # A full index delta (MAX_ITEMS items of id, text, intent, resolution) is wider than an
    # event may be; its depth limit is the same.
    return dataclasses.replace(limits, max_fields=max(limits.max_fields, MAX_ITEMS * 6 + 2))


# handlers ------------------------------------------------------------------------------------
def _field(body: Any, name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if not isinstance(body, dict):
        raise ConfigError("the body must be a JSON object")
    if name not in body:
        if default is ...:
            raise ConfigError(f"{name}: required")
        return default
    value = body[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        wanted = "number" if isinstance(kind, tuple) else kind.__name__
        raise ConfigError(f"{name}: expected {wanted}, got {type(value).__name__}")
    return value


def _strings(body: Any, name: str, default: list[str]) -> list[str]:
    value = _field(body, name, list, default)
    if not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{name}: expected a list of strings")
    return list(value)


def _expiry(body: Any) -> float | None:
    seconds = _field(body, "expires_in_s", (int, float), None)
    if seconds is not None and seconds <= 0:
        raise ConfigError("expires_in_s: must be positive")
    return None if seconds is None else time.time() + seconds


async def list_keys(call: Call) -> tuple[int, Any]:
    """Every API key (never a secret)."""
    return 200, [actions.key_view(k) for k in await call.app.store.list_api_keys()]


async def create_key(call: Call) -> tuple[int, Any]:
    """A new API key; the key itself is in the answer, once."""
    tenant = _field(call.body, "tenant", str)
    roles = _strings(call.body, "roles", ["runner"])
    expires = _expiry(call.body)
    record, key = await call.door.change(
        "apikey.create", f"apikey/{tenant}",
        lambda: actions.create_key(call.app, tenant, roles, expires),
    )  # fmt: skip
    return 201, {**actions.key_view(record), "key": key}


async def revoke_key(call: Call) -> tuple[int, Any]:
    """Revoke a key (404 when there is no active key of that id)."""
    key_id = call.params["key_id"]
    done = await call.door.change(
        "apikey.revoke", f"apikey/{key_id}", lambda: actions.revoke_key(call.app, key_id)
    )
    if not done:
        raise NotFoundError(f"no active API key {key_id!r}")
    return 200, {"id": key_id, "revoked": True}


async def replay_quarantined(call: Call) -> tuple[int, Any]:
    """Normalize a quarantined entry again: the event it became, or today's problems."""
    item_id = call.params["item_id"]
    receipt, problems = await call.door.change(
        "quarantine.replay", f"quarantine/{item_id}",
        lambda: actions.replay_quarantined(call.ingress, item_id),
    )  # fmt: skip
    if receipt is None:
        return 200, {"id": item_id, "accepted": False, "problems": problems}
    return 200, {"id": item_id, "accepted": True, "event_id": receipt.event_id}


async def drop_quarantined(call: Call) -> tuple[int, Any]:
    """Delete a quarantined entry (404 when there is none)."""
    item_id = call.params["item_id"]
    done = await call.door.change(
        "quarantine.drop", f"quarantine/{item_id}",
        lambda: actions.drop_quarantined(call.app, item_id),
    )  # fmt: skip
    if not done:
        raise NotFoundError(f"no quarantined entry {item_id!r}")
    return 200, {"id": item_id, "dropped": True}


async def replay_run(call: Call) -> tuple[int, Any]:
    """Requeue a dead run (409 when it is not dead)."""
    event_id = call.params["event_id"]
    done = await call.door.change(
        "run.replay", f"run/{event_id}", lambda: actions.replay_run(call.app, event_id)
    )
    if not done:
        return 409, {"event_id": event_id, "requeued": False, "detail": "the run is not dead"}
    return 200, {"event_id": event_id, "requeued": True}


async def index_items(call: Call) -> tuple[int, Any]:
    """Add, replace or delete items of a live retrieval index; the counts."""
    name = call.params["name"]

    async def apply() -> Change[dict[str, int]]:
        counts = await apply_delta(call.app.services.get("indexes"), name, call.body)
        return Change(counts, None, {"index": name, "delta": call.body})

    counts: dict[str, int] = await call.door.change("index.items", f"index/{name}", apply)
    return 200, counts


def ingress_view(settings: IngressSettings) -> dict[str, Any]:
    """What a reload can change, without the sources' secrets (the audit keeps a digest)."""
    sources = {
        name: {"workflow": s.workflow, "tenant": s.tenant, "mapping": s.mapping,
               "secrets": len(s.secrets)}
        for name, s in settings.sources.items()
    }  # fmt: skip
    return {"sources": sources, "rate_limits": settings.rate_limits,
            "limits": dataclasses.asdict(settings.limits),
            "idempotency_window_s": settings.idempotency_window_s}  # fmt: skip


async def reload_config(call: Call) -> tuple[int, Any]:
    """Re-read the app's configuration and apply its ingress part; 422 with every problem,
    and nothing changed, when it is invalid."""

    async def apply() -> Change[list[str]]:
        before = ingress_view(call.ingress.settings)
        changes = reload_ingress(call.ingress)
        return Change(changes, before, ingress_view(call.ingress.settings))  # always recorded

    changes: list[str] = await call.door.change("config.reload", "config/ingress", apply)
    return 200, {"reloaded": True, "changes": changes}


async def list_principals(call: Call) -> tuple[int, Any]:
    """Every principal with its roles."""
    return 200, [actions.principal_view(p) for p in await call.app.store.list_principals()]


async def show_principal(call: Call) -> tuple[int, Any]:
    """One principal."""
    return 200, actions.principal_view(await call.app.store.get_principal(call.params["name"]))


async def create_principal(call: Call) -> tuple[int, Any]:
    """A new principal: ``{"name", "kind": user|service, "roles": [...]}``."""
    name = _field(call.body, "name", str)
    kind = _field(call.body, "kind", str, "user")
    roles = _strings(call.body, "roles", [])
    principal = await call.door.change(
        "principal.create", f"principal/{name}",
        lambda: actions.new_principal(call.app, name, kind, roles),
    )  # fmt: skip
    return 201, actions.principal_view(await call.app.store.get_principal(principal.name))


async def disable_principal(call: Call) -> tuple[int, Any]:
    """Disable a principal (409 when disabled already)."""
    name = call.params["name"]
    done = await call.door.change(
        "principal.disable", f"principal/{name}",
        lambda: actions.disable_principal(call.app, name),
    )  # fmt: skip
    return (200 if done else 409), {"name": name, "disabled": True}


async def new_token(call: Call) -> tuple[int, Any]:
    """A new token for a principal: ``{"expires_in_s": N}`` optional; shown once."""
    name = call.params["name"]
    expires = _expiry(call.body if call.body is not None else {})
    record, token = await call.door.change(
        "principal.token", f"principal/{name}",
        lambda: actions.new_token(call.app, name, expires),
    )  # fmt: skip
    return 201, {"token_id": record.id, "principal": name, "expires_at": expires,
                 "token": token}  # fmt: skip


async def revoke_token(call: Call) -> tuple[int, Any]:
    """Revoke one of a principal's tokens (409 when revoked already)."""
    name, token_id = call.params["name"], call.params["token_id"]
    done = await call.door.change(
        "principal.revoke-token", f"principal/{name}",
        lambda: actions.revoke_token(call.app, name, token_id),
    )  # fmt: skip
    return (200 if done else 409), {"token_id": token_id, "revoked": True}


async def list_roles(call: Call) -> tuple[int, Any]:
    """The built-in roles and their permissions."""
    return 200, [{"name": r.name, "description": r.description,
                  "permissions": sorted(p.value for p in r.permissions)}
                 for r in ROLES.values()]  # fmt: skip


async def grant_role(call: Call) -> tuple[int, Any]:
    """Give a principal a role (200 whether or not it had it; ``changed`` says)."""
    name, role = call.params["name"], call.params["role"]
    done = await call.door.change(
        "role.grant", f"principal/{name}", lambda: actions.grant_role(call.app, name, role)
    )
    return 200, {"name": name, "role": role, "changed": done}


async def revoke_role(call: Call) -> tuple[int, Any]:
    """Take a role from a principal (``changed`` says whether it had it)."""
    name, role = call.params["name"], call.params["role"]
    done = await call.door.change(
        "role.revoke", f"principal/{name}", lambda: actions.revoke_role(call.app, name, role)
    )
    return 200, {"name": name, "role": role, "changed": done}


def _int(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise RequestError(f"{name}: a whole number from {low} to {high}", kind="bad-parameter")
    return int(raw)


async def list_audit(call: Call) -> tuple[int, Any]:
    """Audit entries after ``?after=`` (default 0), at most ``?limit=`` (default 100)."""
    after = _int(call.query, "after", 0, 0, 2**62)
    limit = _int(call.query, "limit", 100, 1, _MAX_PAGE)
    entries = await call.door.gate.audit.list(after, limit)
    return 200, [audit_view(e) for e in entries]


async def show_audit(call: Call) -> tuple[int, Any]:
    """One audit entry (404 for a number past any the store can hold)."""
    seq = int(call.params["seq"])
    if not 0 < seq < 2**63:
        raise NotFoundError(f"no audit entry {seq}")
    return 200, audit_view(await call.door.gate.audit.show(seq))


async def verify_audit(call: Call) -> tuple[int, Any]:
    """Verify the whole trail; 200 either way, ``ok`` says."""
    return 200, (await call.door.gate.audit.verify()).as_dict()


def audit_view(entry: Any) -> dict[str, Any]:
    """An audit entry as JSON."""
    return {"seq": entry.seq, "ts": entry.ts, "actor": entry.actor, "action": entry.action,
            "resource": entry.resource, "before": entry.before, "after": entry.after,
            "why": entry.why, "source": entry.source, "prev_hash": entry.prev_hash,
            "hash": entry.hash}  # fmt: skip


P = Permission
#: Every governed route and the permission it needs: the one table of HTTP authorization.
ADMIN_ROUTES: tuple[AdminRoute, ...] = (
    AdminRoute("GET", "/v1/admin/apikeys", P.API_KEYS_READ, list_keys, "List API keys"),
    AdminRoute("POST", "/v1/admin/apikeys", P.API_KEYS_WRITE, create_key,
               "Create an API key (shown once)", body=True),
    AdminRoute("POST", "/v1/admin/apikeys/{key_id}/revoke", P.API_KEYS_WRITE, revoke_key,
               "Revoke an API key"),
    AdminRoute("POST", "/v1/admin/quarantine/{item_id}/replay", P.QUARANTINE_REPLAY,
               replay_quarantined, "Replay a quarantined entry"),
    AdminRoute("DELETE", "/v1/admin/quarantine/{item_id}", P.QUARANTINE_DROP, drop_quarantined,
               "Drop a quarantined entry"),
    AdminRoute("POST", "/v1/admin/runs/{event_id}/replay", P.RUNS_REPLAY, replay_run,
               "Requeue a dead run"),
    AdminRoute("POST", "/v1/indexes/{name}/items", P.INDEXES_WRITE, index_items,
               "Add, replace or delete items of a live retrieval index", body=True, wide=True),
    AdminRoute("POST", "/v1/admin/reload", P.CONFIG_RELOAD, reload_config,
               "Reload the way in's configuration (sources, rate limits, limits)"),
    AdminRoute("GET", "/v1/admin/principals", P.PRINCIPALS_READ, list_principals,
               "List principals"),
    AdminRoute("POST", "/v1/admin/principals", P.PRINCIPALS_WRITE, create_principal,
               "Create a principal", body=True),
    AdminRoute("GET", "/v1/admin/principals/{name}", P.PRINCIPALS_READ, show_principal,
               "Show a principal"),
    AdminRoute("POST", "/v1/admin/principals/{name}/disable", P.PRINCIPALS_WRITE,
               disable_principal, "Disable a principal"),
    AdminRoute("POST", "/v1/admin/principals/{name}/tokens", P.PRINCIPALS_WRITE, new_token,
               "Issue a token for a principal (shown once)", body=True),
    AdminRoute("DELETE", "/v1/admin/principals/{name}/tokens/{token_id}", P.PRINCIPALS_WRITE,
               revoke_token, "Revoke a principal's token"),
    AdminRoute("GET", "/v1/admin/roles", P.ROLES_READ, list_roles, "List the built-in roles"),
    AdminRoute("PUT", "/v1/admin/principals/{name}/roles/{role}", P.ROLES_WRITE, grant_role,
               "Grant a role"),
    AdminRoute("DELETE", "/v1/admin/principals/{name}/roles/{role}", P.ROLES_WRITE,
               revoke_role, "Revoke a role"),
    AdminRoute("GET", "/v1/admin/audit", P.AUDIT_READ, list_audit, "List audit entries"),
    AdminRoute("GET", "/v1/admin/audit/verify", P.AUDIT_READ, verify_audit,
               "Verify the audit trail"),
    AdminRoute("GET", "/v1/admin/audit/{seq:int}", P.AUDIT_READ, show_audit,
               "Show an audit entry"),
    # Managed configuration (sluice.ingress.managed_admin): never a secret's value out.
    AdminRoute("GET", "/v1/admin/secrets", P.SECRETS_READ_METADATA, managed.list_secrets,
               "List secrets (metadata only)"),
    AdminRoute("POST", "/v1/admin/secrets/rotate", P.SECRETS_WRITE, managed.rotate_secrets,
               "Re-wrap every secret's data key with the active key"),
    AdminRoute("GET", "/v1/admin/secrets/{name}", P.SECRETS_READ_METADATA,
               managed.show_secret, "Show a secret's versions (metadata only)"),
    AdminRoute("PUT", "/v1/admin/secrets/{name}", P.SECRETS_WRITE, managed.set_secret,
               "Set a new version of a secret", body=True),
    AdminRoute("DELETE", "/v1/admin/secrets/{name}", P.SECRETS_WRITE, managed.delete_secret,
               "Delete a secret"),
    AdminRoute("GET", "/v1/admin/templates", P.PROMPTS_READ, managed.list_templates,
               "List stored prompt template versions"),
    AdminRoute("POST", "/v1/admin/templates", P.PROMPTS_WRITE, managed.push_template,
               "Push one prompt template version", body=True),
    AdminRoute("GET", "/v1/admin/templates/diff", P.PROMPTS_READ, managed.diff_templates,
               "Diff two stored template versions"),
    AdminRoute("GET", "/v1/admin/templates/{ref}", P.PROMPTS_READ, managed.show_template,
               "Show a stored template version"),
    AdminRoute("GET", "/v1/admin/routing", P.ROUTING_READ, managed.show_routing,
               "Show the model routing rules"),
    AdminRoute("PUT", "/v1/admin/routing", P.ROUTING_WRITE, managed.set_routing,
               "Replace the model routing rules", body=True),
)  # fmt: skip

#: The Starlette routes of :data:`ADMIN_ROUTES`.
ROUTES = [Route(r.path, _endpoint(r), methods=[r.method]) for r in ADMIN_ROUTES]
