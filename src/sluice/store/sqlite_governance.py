"""SQLite side of governance: principals, roles, tokens, and the audit trail.

Kept apart from :mod:`sluice.store.sqlite` so each module stays one concept;
:class:`SqliteGovernanceMixin` adds these methods to :class:`~sluice.store.sqlite.SqliteStore`.
Audit entries are appended through the single writer thread, inside its transaction: the
chain head is read and moved in the same transaction as the entry, so the chain cannot fork.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sluice.errors import NotFoundError
from sluice.store.base import AuditRecord, CheckpointRecord, PrincipalRecord, TokenRecord
from sluice.store.sqlite_writer import Delta

T = TypeVar("T")
_P_COLUMNS = "id, name, kind, created_at, disabled_at"
_T_COLUMNS = "id, principal_id, secret_hash, created_at, expires_at, revoked_at"
AUDIT_COLUMNS = (
    "seq, ts, actor, action, resource, before_digest, after_digest, why, source, prev_hash, hash"
)
_C_COLUMNS = "seq, hash, ts, key_id, signature"


def _principal(conn: sqlite3.Connection, row: Sequence[Any] | None, what: str) -> PrincipalRecord:
    if row is None:
        raise NotFoundError(f"no principal {what!r}")
    roles = conn.execute(
        "SELECT role FROM principal_roles WHERE principal_id = ? ORDER BY role", (row[0],)
    ).fetchall()
    return PrincipalRecord(row[0], row[1], row[2], tuple(r[0] for r in roles), row[3], row[4])


def _principal_id(conn: sqlite3.Connection, name: str) -> str:
    row = conn.execute("SELECT id FROM principals WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFoundError(f"no principal {name!r}")
    return str(row[0])


def audit_from_row(row: Sequence[Any]) -> AuditRecord:
    """An :class:`AuditRecord` from a row in ``AUDIT_COLUMNS`` order."""
    return AuditRecord(
        int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
        row[10],
    )  # fmt: skip


class SqliteGovernanceMixin:
    """Governance methods of the SQLite store (see the module docstring)."""

    _write: Callable[[Callable[[sqlite3.Connection, Delta], Any]], Any]
    _read: Callable[[Callable[[sqlite3.Connection], Any]], Any]

    async def put_principal(self, record: PrincipalRecord) -> bool:
        """Store a new principal and its roles; False when the name is taken."""

        def op(conn: sqlite3.Connection, delta: Delta) -> bool:
            cur = conn.execute(
                f"INSERT INTO principals({_P_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (record.id, record.name, record.kind, record.created_at, record.disabled_at),
            )
            if cur.rowcount != 1:
                return False
            conn.executemany(
                "INSERT INTO principal_roles(principal_id, role, granted_at) VALUES (?, ?, ?)",
                [(record.id, role, record.created_at) for role in record.roles],
            )
            return True

        done: bool = await self._write(op)
        return done

    async def get_principal(self, name: str) -> PrincipalRecord:
        """One principal by name."""
        sql = f"SELECT {_P_COLUMNS} FROM principals WHERE name = ?"
        found: PrincipalRecord = await self._read(
            lambda c: _principal(c, c.execute(sql, (name,)).fetchone(), name)
        )
        return found

    async def principal_by_id(self, principal_id: str) -> PrincipalRecord:
        """One principal by id."""
        sql = f"SELECT {_P_COLUMNS} FROM principals WHERE id = ?"
        found: PrincipalRecord = await self._read(
            lambda c: _principal(c, c.execute(sql, (principal_id,)).fetchone(), principal_id)
        )
        return found

    async def list_principals(self) -> list[PrincipalRecord]:
        """Every principal, by name."""

        def read(conn: sqlite3.Connection) -> list[PrincipalRecord]:
            rows = conn.execute(f"SELECT {_P_COLUMNS} FROM principals ORDER BY name").fetchall()
            return [_principal(conn, row, row[1]) for row in rows]

        found: list[PrincipalRecord] = await self._read(read)
        return found

    async def disable_principal(self, name: str, at: float) -> bool:
        """Disable a principal; False if there is none or it is disabled already."""

        def op(conn: sqlite3.Connection, delta: Delta) -> bool:
            return (
                conn.execute(
                    "UPDATE principals SET disabled_at = ? WHERE name = ? AND disabled_at IS NULL",
                    (at, name),
                ).rowcount
                == 1
            )

        done: bool = await self._write(op)
        return done

    async def grant_role(self, name: str, role: str) -> bool:
        """Give a principal a role; False if it had it."""

        def op(conn: sqlite3.Connection, delta: Delta) -> bool:
            pid = _principal_id(conn, name)
            return (
                conn.execute(
                    "INSERT INTO principal_roles(principal_id, role, granted_at) VALUES (?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (pid, role, time.time()),
                ).rowcount
                == 1
            )

        done: bool = await self._write(op)
        return done

    async def revoke_role(self, name: str, role: str) -> bool:
        """Take a role from a principal; False if it did not have it."""

        def op(conn: sqlite3.Connection, delta: Delta) -> bool:
            pid = _principal_id(conn, name)
            return (
                conn.execute(
                    "DELETE FROM principal_roles WHERE principal_id = ? AND role = ?", (pid, role)
                ).rowcount
                == 1
            )

        done: bool = await self._write(op)
        return done

    async def put_token(self, record: TokenRecord) -> None:
        """Store a new principal token (only its hash)."""

        def op(conn: sqlite3.Connection, delta: Delta) -> None:
            conn.execute(
                f"INSERT INTO principal_tokens({_T_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (record.id, record.principal_id, record.secret_hash, record.created_at,
                 record.expires_at, record.revoked_at),
            )  # fmt: skip

        await self._write(op)

    async def get_token(self, token_id: str) -> TokenRecord:
        """One principal token."""
        sql = f"SELECT {_T_COLUMNS} FROM principal_tokens WHERE id = ?"
        row = await self._read(lambda c: c.execute(sql, (token_id,)).fetchone())
        if row is None:
            raise NotFoundError(f"no token {token_id!r}")
        return TokenRecord(row[0], row[1], row[2], row[3], row[4], row[5])

    async def revoke_token(self, token_id: str, at: float) -> bool:
        """Mark a token revoked; False if there is none or it was revoked already."""

        def op(conn: sqlite3.Connection, delta: Delta) -> bool:
            return (
                conn.execute(
                    "UPDATE principal_tokens SET revoked_at = ?"
                    " WHERE id = ? AND revoked_at IS NULL",
                    (at, token_id),
                ).rowcount
                == 1
            )

        done: bool = await self._write(op)
        return done

    async def append_audit(self, seal: Callable[[int, str], AuditRecord]) -> AuditRecord:
        """Append one entry after the head, moving the head, in one writer transaction."""

        def op(conn: sqlite3.Connection, delta: Delta) -> AuditRecord:
            head = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
            entry = seal(int(head[0]), str(head[1]))
            conn.execute(
                f"INSERT INTO audit_log({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.seq, entry.ts, entry.actor, entry.action, entry.resource, entry.before,
                 entry.after, entry.why, entry.source, entry.prev_hash, entry.hash),
            )  # fmt: skip
            conn.execute("UPDATE audit_head SET seq = ?, hash = ?", (entry.seq, entry.hash))
            return entry

        appended: AuditRecord = await self._write(op)
        return appended

    async def audit_entries(self, after: int = 0, limit: int = 1000) -> list[AuditRecord]:
        """Entries after ``after``, oldest first."""
        sql = f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?"
        rows = await self._read(lambda c: c.execute(sql, (after, limit)).fetchall())
        return [audit_from_row(r) for r in rows]

    async def audit_entry(self, seq: int) -> AuditRecord:
        """One entry."""
        sql = f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq = ?"
        row = await self._read(lambda c: c.execute(sql, (seq,)).fetchone())
        if row is None:
            raise NotFoundError(f"no audit entry {seq}")
        return audit_from_row(row)

    async def audit_head(self) -> tuple[int, str]:
        """The recorded chain head."""
        sql = "SELECT seq, hash FROM audit_head WHERE id = 1"
        row = await self._read(lambda c: c.execute(sql).fetchone())
        return int(row[0]), str(row[1])

    async def put_checkpoint(self, record: CheckpointRecord) -> bool:
        """Store a signed checkpoint; False if that sequence number has one."""

        def op(conn: sqlite3.Connection, delta: Delta) -> bool:
            return (
                conn.execute(
                    f"INSERT INTO audit_checkpoints({_C_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (record.seq, record.hash, record.ts, record.key_id, record.signature),
                ).rowcount
                == 1
            )

        done: bool = await self._write(op)
        return done

    async def checkpoints(self) -> list[CheckpointRecord]:
        """Every signed checkpoint, oldest first."""
        sql = f"SELECT {_C_COLUMNS} FROM audit_checkpoints ORDER BY seq"
        rows = await self._read(lambda c: c.execute(sql).fetchall())
        return [CheckpointRecord(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]
