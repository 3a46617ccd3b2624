"""The gate every governed action passes: authorize, apply, audit, in that order.

The command line and the HTTP admin routes both call :meth:`Gate.change` (state-changing) or
:meth:`Gate.check` (reads) with the permission their table names for the action, so the rule
"who may do what" and the rule "every change is audited" are each kept in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sluice.errors import Forbidden
from sluice.governance.audit import AuditLog
from sluice.governance.permissions import Permission
from sluice.governance.principals import Principal, authorize

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

    def check(self, principal: Principal, permission: Permission) -> None:
        """Raise :class:`~sluice.errors.Forbidden` unless ``principal`` holds ``permission``."""
        try:
            authorize(principal, permission)
        except Forbidden:
            log.warning("refused: %s lacks %s", principal.name, permission.value)
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
            await self.audit.append(principal, action, resource, done.before, done.after, why,
                                    source)  # fmt: skip
        return done.result
