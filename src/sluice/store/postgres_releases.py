"""PostgreSQL side of releases: immutable rows, inserted once, never updated."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sluice.errors import NotFoundError
from sluice.store.base import ReleaseRecord
from sluice.store.sqlite_releases import RELEASE_COLUMNS, manifest_json, release_from_row


class PostgresReleasesMixin:
    """Release methods of the PostgreSQL store (see :mod:`sluice.store.sqlite_releases`)."""

    _fetch: Callable[..., Awaitable[list[Any]]]

    async def put_release(self, record: ReleaseRecord) -> bool:
        """Insert ``record`` unless its id exists (a release is never updated)."""
        rows = await self._fetch(
            f"INSERT INTO releases({RELEASE_COLUMNS}) VALUES ($1, $2, $3::jsonb, $4, $5, $6)"
            " ON CONFLICT (id) DO NOTHING RETURNING id",
            record.id, record.workflow, manifest_json(record), record.created_at,
            record.created_by, record.note,
        )  # fmt: skip
        return bool(rows)

    async def get_release(self, release_id: str) -> ReleaseRecord:
        """The release with this id, or :class:`NotFoundError`."""
        rows = await self._fetch(
            "SELECT id, workflow, manifest::text, created_at, created_by, note FROM releases"
            " WHERE id = $1",
            release_id,
        )
        if not rows:
            raise NotFoundError(f"no release {release_id!r}")
        return release_from_row(rows[0])

    async def list_releases(
        self, workflow: str | None = None, limit: int = 100
    ) -> list[ReleaseRecord]:
        """Releases (of one workflow, or all), newest first, at most ``limit``."""
        select = "SELECT id, workflow, manifest::text, created_at, created_by, note FROM releases"
        order = "ORDER BY created_at DESC, id"
        if workflow is None:
            rows = await self._fetch(f"{select} {order} LIMIT $1", limit)
        else:
            query = f"{select} WHERE workflow = $1 {order} LIMIT $2"
            rows = await self._fetch(query, workflow, limit)
        return [release_from_row(r) for r in rows]
