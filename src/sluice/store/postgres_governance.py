"""PostgreSQL side of governance: principals, roles, tokens, and the audit trail.

Kept apart from :mod:`sluice.store.postgres` so each module stays one concept;
:class:`PostgresGovernanceMixin` adds these methods to
:class:`~sluice.store.postgres.PostgresStore`. An audit append locks the chain head's row
(``SELECT ... FOR UPDATE``) in the transaction that inserts the entry and moves the head, so
any number of appenders on any number of hosts take turns and the chain never forks.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sluice.errors import NotFoundError
from sluice.store.base import AuditRecord, CheckpointRecord, PrincipalRecord, TokenRecord

_P_COLUMNS = "id, name, kind, created_at, disabled_at"
_T_COLUMNS = "id, principal_id, secret_hash, created_at, expires_at, revoked_at"
_AUDIT_COLUMNS = (
    "seq, ts, actor, action, resource, before_digest, after_digest, why, source, prev_hash, hash"
)
_C_COLUMNS = "seq, hash, ts, key_id, signature"
# A principal with its roles in one row (roles sorted; none: an empty array).
_PRINCIPAL = f"""
SELECT {", ".join("p." + c for c in _P_COLUMNS.split(", "))},
       coalesce(array_agg(r.role ORDER BY r.role) FILTER (WHERE r.role IS NOT NULL), '{{}}')
FROM principals p LEFT JOIN principal_roles r ON r.principal_id = p.id
"""


def _principal(row: Sequence[Any]) -> PrincipalRecord:
    return PrincipalRecord(row[0], row[1], row[2], tuple(row[5]), row[3], row[4])


def _audit(row: Sequence[Any]) -> AuditRecord:
    return AuditRecord(
        int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
        row[10],
    )  # fmt: skip


class PostgresGovernanceMixin:
    """Governance methods of the PostgreSQL store (see the module docstring)."""

    _in_transaction: Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]]
    _fetch: Callable[..., Awaitable[list[Any]]]

    async def put_principal(self, record: PrincipalRecord) -> bool:
        """Store a new principal and its roles; False when the name is taken."""

        async def run(conn: Any) -> bool:
            added = await conn.fetchval(
                f"INSERT INTO principals({_P_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT DO NOTHING RETURNING 1",
                record.id, record.name, record.kind, record.created_at, record.disabled_at,
            )  # fmt: skip
            if added is None:
                return False
            await conn.executemany(
                "INSERT INTO principal_roles(principal_id, role, granted_at) VALUES ($1, $2, $3)",
                [(record.id, role, record.created_at) for role in record.roles],
            )
            return True

        done: bool = await self._in_transaction(run)
        return done

    async def _one(self, where: str, value: str) -> PrincipalRecord:
        rows = await self._fetch(f"{_PRINCIPAL} WHERE p.{where} = $1 GROUP BY p.id", value)
        if not rows:
            raise NotFoundError(f"no principal {value!r}")
        return _principal(rows[0])

    async def get_principal(self, name: str) -> PrincipalRecord:
        """One principal by name."""
        return await self._one("name", name)

    async def principal_by_id(self, principal_id: str) -> PrincipalRecord:
        """One principal by id."""
        return await self._one("id", principal_id)

    async def list_principals(self) -> list[PrincipalRecord]:
        """Every principal, by name."""
        rows = await self._fetch(f"{_PRINCIPAL} GROUP BY p.id ORDER BY p.name")
        return [_principal(r) for r in rows]

    async def disable_principal(self, name: str, at: float) -> bool:
        """Disable a principal; False if there is none or it is disabled already."""
        rows = await self._fetch(
            "UPDATE principals SET disabled_at = $1 WHERE name = $2 AND disabled_at IS NULL"
            " RETURNING 1",
            at,
            name,
        )
        return bool(rows)

    async def _principal_id(self, conn: Any, name: str) -> str:
        pid = await conn.fetchval("SELECT id FROM principals WHERE name = $1", name)
        if pid is None:
            raise NotFoundError(f"no principal {name!r}")
        return str(pid)

    async def grant_role(self, name: str, role: str) -> bool:
        """Give a principal a role; False if it had it."""

        async def run(conn: Any) -> bool:
            pid = await self._principal_id(conn, name)
            added = await conn.fetchval(
                "INSERT INTO principal_roles(principal_id, role, granted_at)"
                " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1",
                pid, role, time.time(),
            )  # fmt: skip
            return added is not None

        done: bool = await self._in_transaction(run)
        return done

    async def revoke_role(self, name: str, role: str) -> bool:
        """Take a role from a principal; False if it did not have it."""

        async def run(conn: Any) -> bool:
            pid = await self._principal_id(conn, name)
            gone = await conn.fetchval(
                "DELETE FROM principal_roles WHERE principal_id = $1 AND role = $2 RETURNING 1",
                pid,
                role,
            )
            return gone is not None

        done: bool = await self._in_transaction(run)
        return done

    async def put_token(self, record: TokenRecord) -> None:
        """Store a new principal token (only its hash)."""
        await self._fetch(
            f"INSERT INTO principal_tokens({_T_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)",
            record.id, record.principal_id, record.secret_hash, record.created_at,
            record.expires_at, record.revoked_at,
        )  # fmt: skip

    async def get_token(self, token_id: str) -> TokenRecord:
        """One principal token."""
        rows = await self._fetch(
            f"SELECT {_T_COLUMNS} FROM principal_tokens WHERE id = $1", token_id
        )
        if not rows:
            raise NotFoundError(f"no token {token_id!r}")
        r = rows[0]
        return TokenRecord(r[0], r[1], r[2], r[3], r[4], r[5])

    async def revoke_token(self, token_id: str, at: float) -> bool:
        """Mark a token revoked; False if there is none or it was revoked already."""
        rows = await self._fetch(
            "UPDATE principal_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL"
            " RETURNING 1",
            at,
            token_id,
        )
        return bool(rows)

    async def append_audit(self, seal: Callable[[int, str], AuditRecord]) -> AuditRecord:
        """Append one entry after the head, holding the head's row lock until commit."""

        async def run(conn: Any) -> AuditRecord:
            head = await conn.fetchrow("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
            entry = seal(int(head[0]), str(head[1]))
            await conn.execute(
                f"INSERT INTO audit_log({_AUDIT_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                entry.seq, entry.ts, entry.actor, entry.action, entry.resource, entry.before,
                entry.after, entry.why, entry.source, entry.prev_hash, entry.hash,
            )  # fmt: skip
            await conn.execute(
                "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", entry.seq, entry.hash
            )
            return entry

        appended: AuditRecord = await self._in_transaction(run)
        return appended

    async def audit_entries(self, after: int = 0, limit: int = 1000) -> list[AuditRecord]:
        """Entries after ``after``, oldest first."""
        rows = await self._fetch(
            f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
            after,
            limit,
        )
        return [_audit(r) for r in rows]

    async def audit_entry(self, seq: int) -> AuditRecord:
        """One entry."""
        rows = await self._fetch(f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE seq = $1", seq)
        if not rows:
            raise NotFoundError(f"no audit entry {seq}")
        return _audit(rows[0])

    async def audit_head(self) -> tuple[int, str]:
        """The recorded chain head."""
        rows = await self._fetch("SELECT seq, hash FROM audit_head WHERE id = 1")
        return int(rows[0][0]), str(rows[0][1])

    async def put_checkpoint(self, record: CheckpointRecord) -> bool:
        """Store a signed checkpoint; False if that sequence number has one."""
        rows = await self._fetch(
            f"INSERT INTO audit_checkpoints({_C_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            record.seq, record.hash, record.ts, record.key_id, record.signature,
        )  # fmt: skip
        return bool(rows)

    async def checkpoints(self) -> list[CheckpointRecord]:
        """Every signed checkpoint, oldest first."""
        rows = await self._fetch(f"SELECT {_C_COLUMNS} FROM audit_checkpoints ORDER BY seq")
        return [CheckpointRecord(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]
