"""The admin actions the command line and the HTTP admin routes share.

Each returns a :class:`~sluice.governance.Change`: its result, and the views of the resource
before and after that the audit trail keeps as digests. They authorize nothing themselves:
callers reach them through :meth:`sluice.governance.Authorized.change`, which the command or
route table let in with the action's permission.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sluice.app import SluiceApp
from sluice.errors import ConfigError, NotFoundError
from sluice.governance import Change, Principal, create_principal, issue_token, role_named
from sluice.ingress.apikeys import create_api_key
from sluice.ingress.intake import Ingress
from sluice.store.base import ApiKeyRecord, PrincipalRecord, QuarantineItem, Receipt, TokenRecord


def key_view(record: ApiKeyRecord) -> dict[str, Any]:
    """An API key as shown and audited (never its hash)."""
    return {"id": record.id, "tenant": record.tenant, "roles": list(record.roles),
            "created_at": record.created_at, "expires_at": record.expires_at,
            "revoked_at": record.revoked_at}  # fmt: skip


def principal_view(record: PrincipalRecord) -> dict[str, Any]:
    """A principal as shown and audited (one view, so before and after digests chain)."""
    return {"id": record.id, "name": record.name, "kind": record.kind, "roles": list(record.roles),
            "created_at": record.created_at, "disabled_at": record.disabled_at,
            "disabled": record.disabled_at is not None}  # fmt: skip


def _quarantine_view(item: QuarantineItem) -> dict[str, Any]:
    return {"id": item.id, "source": item.source, "workflow": item.workflow,
            "tenant": item.tenant, "reason": item.reason,
            "problems": list(item.problems)}  # fmt: skip


async def create_key(
    app: SluiceApp, tenant: str, roles: Sequence[str], expires_at: float | None
) -> Change[tuple[ApiKeyRecord, str]]:
    """A new API key (its secret shown once)."""
    record, key = await create_api_key(app.store, tenant, roles, expires_at)
    return Change((record, key), None, key_view(record))


async def revoke_key(app: SluiceApp, key_id: str) -> Change[bool]:
    """Revoke an API key; no change when it is unknown or revoked already."""
    try:
        before = await app.store.get_api_key(key_id)
    except NotFoundError:
        return Change(False, changed=False)
    if not await app.store.revoke_api_key(key_id):
        return Change(False, changed=False)
    after = await app.store.get_api_key(key_id)
    return Change(True, key_view(before), key_view(after))


async def replay_quarantined(
    ingress: Ingress, item_id: str
) -> Change[tuple[Receipt | None, list[str]]]:
    """Normalize a quarantined entry again (an unknown id raises NotFoundError)."""
    item = await ingress.app.store.get_quarantined(item_id)
    receipt, problems = await ingress.replay_quarantined(item_id)
    after = {"event_id": receipt.event_id} if receipt is not None else {"problems": problems}
    return Change((receipt, problems), _quarantine_view(item), after)


async def drop_quarantined(app: SluiceApp, item_id: str) -> Change[bool]:
    """Delete a quarantined entry; no change when there is none."""
    try:
        item = await app.store.get_quarantined(item_id)
    except NotFoundError:
        return Change(False, changed=False)
    if not await app.store.drop_quarantined(item_id):
        return Change(False, changed=False)
    return Change(True, _quarantine_view(item), None)


async def replay_run(app: SluiceApp, event_id: str) -> Change[bool]:
    """Requeue a dead run; no change when it is not dead (an unknown id: NotFoundError)."""
    record = await app.store.get_event(event_id, with_steps=False)
    if not await app.runtime.replay(event_id):
        return Change(False, changed=False)
    return Change(True, {"event_id": event_id, "state": record.state.value},
                  {"event_id": event_id, "state": "accepted"})  # fmt: skip


async def new_principal(
    app: SluiceApp, name: str, kind: str, roles: Sequence[str]
) -> Change[Principal]:
    """A new principal (ConfigError for a bad kind, role or a taken name)."""
    principal = await create_principal(app.store, name, kind, roles)
    # The stored record's view, as the later changes of this principal show it "before".
    return Change(principal, None, principal_view(await app.store.get_principal(name)))


async def disable_principal(app: SluiceApp, name: str) -> Change[bool]:
    """Disable a principal (its tokens stop working); no change when disabled already."""
    before = await app.store.get_principal(name)
    if not await app.store.disable_principal(name, time.time()):
        return Change(False, changed=False)
    return Change(True, principal_view(before), principal_view(await app.store.get_principal(name)))


async def new_token(
    app: SluiceApp, name: str, expires_at: float | None
) -> Change[tuple[TokenRecord, str]]:
    """A new token for a principal (shown once; only its hash is stored)."""
    record = await app.store.get_principal(name)
    if record.disabled_at is not None:
        raise ConfigError(f"principal {name!r} is disabled")
    if expires_at is not None and expires_at <= time.time():
        raise ConfigError("the token's expiry time has passed")
    token, secret = await issue_token(app.store, Principal.from_record(record), expires_at)
    view = {"token_id": token.id, "principal": name, "expires_at": expires_at}
    return Change((token, secret), None, view)


async def revoke_token(app: SluiceApp, name: str, token_id: str) -> Change[bool]:
    """Revoke one of a principal's tokens (NotFoundError unless it is that principal's);
    no change when it was revoked already."""
    record = await app.store.get_principal(name)
    token = await app.store.get_token(token_id)
    if token.principal_id != record.id:
        raise NotFoundError(f"no token {token_id!r} of {name!r}")
    if not await app.store.revoke_token(token_id, time.time()):
        return Change(False, changed=False)
    view = {"token_id": token_id, "principal": name, "expires_at": token.expires_at}
    return Change(True, view, {**view, "revoked": True})


async def grant_role(app: SluiceApp, name: str, role: str) -> Change[bool]:
    """Give a principal a built-in role; no change when it has it."""
    role_named(role)
    before = await app.store.get_principal(name)
    if not await app.store.grant_role(name, role):
        return Change(False, changed=False)
    return Change(True, principal_view(before), principal_view(await app.store.get_principal(name)))


async def revoke_role(app: SluiceApp, name: str, role: str) -> Change[bool]:
    """Take a role from a principal; no change when it did not have it."""
    before = await app.store.get_principal(name)
    if not await app.store.revoke_role(name, role):
        return Change(False, changed=False)
    return Change(True, principal_view(before), principal_view(await app.store.get_principal(name)))
