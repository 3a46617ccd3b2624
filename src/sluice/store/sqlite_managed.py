"""SQLite side of managed configuration (:mod:`sluice.store.managed`).

:class:`SqliteManagedMixin` adds the methods to :class:`~sluice.store.sqlite.SqliteStore`;
writes run on the group-commit writer, so a new version number is read and taken in one
transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from sluice.errors import NotFoundError
from sluice.store.managed import Rewrap, RoutingRecord, SecretVersion, TemplateRecord
from sluice.store.sqlite_writer import Delta

_S_COLUMNS = "name, version, wrapped_key, value, created_at, created_by"
_T_COLUMNS = "name, version, source, created_at, created_by"
_R_COLUMNS = "version, document, created_at, created_by"


def _secret(row: Sequence[Any]) -> SecretVersion:
    return SecretVersion(row[0], int(row[1]), bytes(row[2]), bytes(row[3]), row[4], row[5])


def _template(row: Sequence[Any]) -> TemplateRecord:
    return TemplateRecord(row[0], row[1], row[2], row[3], row[4])


class SqliteManagedMixin:
    """Managed-configuration methods of the SQLite store (see the module docstring)."""

    _write: Callable[..., Any]
    _read: Callable[..., Any]

    async def put_secret(
        self, name: str, wrapped_key: bytes, value: bytes, created_at: float, created_by: str
    ) -> int:
        """Add the next version of ``name``."""

        def op(conn: sqlite3.Connection, delta: Delta) -> int:
            row = conn.execute(
                "SELECT coalesce(max(version), 0) FROM secrets WHERE name = ?", (name,)
            ).fetchone()
            version = int(row[0]) + 1
            conn.execute(
                f"INSERT INTO secrets({_S_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (name, version, wrapped_key, value, created_at, created_by),
            )
            return version

        version: int = await self._write(op)
        return version

    async def secret_versions(self, name: str | None = None) -> list[SecretVersion]:
        """Every version of ``name`` (or of every secret)."""
        where, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
        sql = f"SELECT {_S_COLUMNS} FROM secrets {where} ORDER BY name, version"
        rows = await self._read(lambda c: c.execute(sql, params).fetchall())
        return [_secret(r) for r in rows]

    async def rewrap_secrets(self, rewrap: Rewrap) -> int:
        """Wrap every data key again where ``rewrap`` says so, in one transaction."""

        def op(conn: sqlite3.Connection, delta: Delta) -> int:
            rows = conn.execute("SELECT name, version, wrapped_key FROM secrets").fetchall()
            changed = 0
            for name, version, wrapped in rows:
                new = rewrap(bytes(wrapped))
                if new is not None:
                    conn.execute(
                        "UPDATE secrets SET wrapped_key = ? WHERE name = ? AND version = ?",
                        (new, name, version),
                    )
                    changed += 1
            return changed

        changed: int = await self._write(op)
        return changed

    async def delete_secret(self, name: str) -> int:
        """Remove every version of ``name``."""

        def op(conn: sqlite3.Connection, delta: Delta) -> int:
            return conn.execute("DELETE FROM secrets WHERE name = ?", (name,)).rowcount

        removed: int = await self._write(op)
        return removed

    async def put_template(self, record: TemplateRecord) -> bool:
        """Add a template version unless it is there already."""

        def op(conn: sqlite3.Connection, delta: Delta) -> bool:
            cur = conn.execute(
                f"INSERT OR IGNORE INTO prompt_templates({_T_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (record.name, record.version, record.source, record.created_at,
                 record.created_by),
            )  # fmt: skip
            return cur.rowcount == 1

        added: bool = await self._write(op)
        return added

    async def get_template(self, name: str, version: str) -> TemplateRecord:
        """One template version."""
        sql = f"SELECT {_T_COLUMNS} FROM prompt_templates WHERE name = ? AND version = ?"
        row = await self._read(lambda c: c.execute(sql, (name, version)).fetchone())
        if row is None:
            raise NotFoundError(f"no prompt template {name}@{version} in the store")
        return _template(row)

    async def list_templates(self, name: str | None = None) -> list[TemplateRecord]:
        """Every version of ``name`` (or of every template)."""
        where, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
        sql = f"SELECT {_T_COLUMNS} FROM prompt_templates {where} ORDER BY name, created_at"
        rows = await self._read(lambda c: c.execute(sql, params).fetchall())
        return [_template(r) for r in rows]

    async def put_routing(self, document: str, created_at: float, created_by: str) -> int:
        """Add the next version of the routing rules."""

        def op(conn: sqlite3.Connection, delta: Delta) -> int:
            row = conn.execute("SELECT coalesce(max(version), 0) FROM routing_rules").fetchone()
            version = int(row[0]) + 1
            conn.execute(
                f"INSERT INTO routing_rules({_R_COLUMNS}) VALUES (?, ?, ?, ?)",
                (version, document, created_at, created_by),
            )
            return version

        version: int = await self._write(op)
        return version

    async def get_routing(self) -> RoutingRecord | None:
        """The latest routing rules."""
        sql = f"SELECT {_R_COLUMNS} FROM routing_rules ORDER BY version DESC LIMIT 1"
        row = await self._read(lambda c: c.execute(sql).fetchone())
        return None if row is None else RoutingRecord(int(row[0]), row[1], row[2], row[3])
