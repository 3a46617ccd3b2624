"""SQLite side of releases: immutable rows, inserted once, never updated.

A release is written through the group-commit writer like everything else (one small
transaction); reading one is a primary-key lookup.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from sluice.errors import NotFoundError
from sluice.store.base import ReleaseRecord
from sluice.store.sqlite_writer import Delta

RELEASE_COLUMNS = "id, workflow, manifest, created_at, created_by, note"


def release_from_row(row: Sequence[Any]) -> ReleaseRecord:
    """A :class:`ReleaseRecord` from a row in ``RELEASE_COLUMNS`` order (manifest as JSON)."""
    manifest = row[2]
    if isinstance(manifest, (bytes, str)):
        manifest = orjson.loads(manifest)
    return ReleaseRecord(
        id=str(row[0]), workflow=str(row[1]), manifest=manifest, created_at=float(row[3]),
        created_by=str(row[4] or ""), note=str(row[5] or ""),
    )  # fmt: skip


def manifest_json(record: ReleaseRecord) -> str:
    """The manifest as canonical JSON text (sorted keys), as both stores keep it."""
    return orjson.dumps(dict(record.manifest), option=orjson.OPT_SORT_KEYS).decode()


class SqliteReleasesMixin:
    """Release methods of the SQLite store (see the module docstring)."""

    _write: Callable[..., Any]
    _read: Callable[..., Any]

    async def put_release(self, record: ReleaseRecord) -> bool:
        """Insert ``record`` unless its id exists (a release is never updated)."""
        text = manifest_json(record)

        def op(conn: sqlite3.Connection, delta: Delta) -> bool:
            cursor = conn.execute(
                f"INSERT INTO releases({RELEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO NOTHING",
                (record.id, record.workflow, text, record.created_at, record.created_by,
                 record.note),
            )  # fmt: skip
            return bool(cursor.rowcount)

        inserted: bool = await self._write(op)
        return inserted

    async def get_release(self, release_id: str) -> ReleaseRecord:
        """The release with this id, or :class:`NotFoundError`."""
        sql = f"SELECT {RELEASE_COLUMNS} FROM releases WHERE id = ?"
        row = await self._read(lambda c: c.execute(sql, (release_id,)).fetchone())
        if row is None:
            raise NotFoundError(f"no release {release_id!r}")
        return release_from_row(row)

    async def list_releases(
        self, workflow: str | None = None, limit: int = 100
    ) -> list[ReleaseRecord]:
        """Releases (of one workflow, or all), newest first, at most ``limit``."""
        where, params = ("WHERE workflow = ?", (workflow,)) if workflow is not None else ("", ())
        sql = f"SELECT {RELEASE_COLUMNS} FROM releases {where} ORDER BY created_at DESC, id LIMIT ?"
        rows = await self._read(lambda c: c.execute(sql, (*params, limit)).fetchall())
        return [release_from_row(r) for r in rows]
