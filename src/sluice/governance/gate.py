"""The gate every governed action passes: authorize, apply, audit, in that order.

The command line and the HTTP admin routes both call :meth:`Gate.change` (state-changing) or
:meth:`Gate.check` (reads) with the permission their table names for the action, so the rule
"who may do what" and the rule "every change is audited" are each kept in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sluice.errors import Forbidden
from sluice.governance.audit import AuditLog
from sluice.governance.permissions import Permission
from sluice.governance.principals import Principal, authorize
from sluice.governance.signing import signing_key_from_env, verify_key_from_env
from sluice.store.base import GovernanceStore

T = TypeVar("T")
log = logging.getLogger("sluice.governance")


@dataclass(frozen=True, slots=True)
class Change(Generic[T]):
    """What an applied action did: its ``result`` for the caller, the resource's state
    ``before`` and ``after`` (digested into the audit entry), and whether anything changed
    (a no-op, such as revoking a revoked key, is not audited)."""

    result: T
    before: Any = None
    after: Any = None
    changed: bool = True


class Gate:
    """Authorizes principals and audits what they change (see the module docstring)."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    def enter(
        self, principal: Principal, permission: Permission, source: str, why: str = ""
    ) -> Authorized:
        """Check ``permission`` once at the door of an action (a command, a route) and return
        the pass its changes are made with: they are audited under that same permission."""
        self.check(principal, permission)
        return Authorized(self, principal, permission, source, why)

    def check(self, principal: Principal, permission: Permission) -> None:
        """Raise :class:`~sluice.errors.Forbidden` unless ``principal`` holds ``permission``."""
        try:
            authorize(principal, permission)
        except Forbidden:
            log.info("refused: %s lacks %s", principal.name, permission.value)
            raise

    async def change(
        self,
        principal: Principal,
        permission: Permission,
        action: str,
        resource: str,
        apply: Callable[[], Awaitable[Change[T]]],
        why: str = "",
        source: str = "cli",
    ) -> T:
        """Check ``permission``, run ``apply``, and append its change to the audit trail."""
        self.check(principal, permission)
        done = await apply()
        if done.changed:
            await self.audit.append(principal, action, resource, done.before, done.after,
                                    why, source)  # fmt: skip
        return done.result


@dataclass(frozen=True, slots=True)
class Authorized:
    """A principal let in for one permission (by :meth:`Gate.enter`): its changes go through
    :meth:`Gate.change` with that permission, the ``source`` and the ``why`` given."""

    gate: Gate
    principal: Principal
    permission: Permission
    source: str
    why: str = ""

    async def change(
        self, action: str, resource: str, apply: Callable[[], Awaitable[Change[T]]]
    ) -> T:
        """Apply and audit one change (see :meth:`Gate.change`)."""
        return await self.gate.change(self.principal, self.permission, action, resource, apply,
                                      self.why, self.source)  # fmt: skip


def gate_for(store: GovernanceStore, env: Mapping[str, str] | None = None) -> Gate:
    """The gate of a store, its audit trail signed with the configured key (if any)."""
    return Gate(AuditLog(store, signing_key_from_env(env), verify_key_from_env(env)))
