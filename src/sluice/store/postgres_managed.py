"""PostgreSQL side of managed configuration (:mod:`sluice.store.managed`).

:class:`PostgresManagedMixin` adds the methods to :class:`~sluice.store.postgres.PostgresStore`.
A new version number is taken under a transaction-scoped advisory lock on the secret's name
(or on the routing rules), so concurrent writers from any process never take the same number.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sluice.errors import NotFoundError
from sluice.store.managed import Rewrap, RoutingRecord, SecretVersion, TemplateRecord

_S_COLUMNS = "name, version, wrapped_key, value, created_at, created_by"
_T_COLUMNS = "name, version, source, created_at, created_by"
_R_COLUMNS = "version, document, created_at, created_by"


def _secret(row: Sequence[Any]) -> SecretVersion:
    return SecretVersion(row[0], int(row[1]), bytes(row[2]), bytes(row[3]), row[4], row[5])


def _template(row: Sequence[Any]) -> TemplateRecord:
    return TemplateRecord(row[0], row[1], row[2], row[3], row[4])


class PostgresManagedMixin:
    """Managed-configuration methods of the PostgreSQL store (see the module docstring)."""

    schema: str
    _in_transaction: Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]]
    _fetch: Callable[..., Awaitable[list[Any]]]

    async def _lock(self, conn: Any, what: str) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{self.schema}:{what}")

    async def put_secret(
        self, name: str, wrapped_key: bytes, value: bytes, created_at: float, created_by: str
    ) -> int:
        """Add the next version of ``name``."""

        async def run(conn: Any) -> int:
            await self._lock(conn, f"secret:{name}")
            version = 1 + int(
                await conn.fetchval(
                    "SELECT coalesce(max(version), 0) FROM secrets WHERE name = $1", name
                )
            )
            await conn.execute(
                f"INSERT INTO secrets({_S_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)",
                name, version, wrapped_key, value, created_at, created_by,
            )  # fmt: skip
            return version

        version: int = await self._in_transaction(run)
        return version

    async def secret_versions(self, name: str | None = None) -> list[SecretVersion]:
        """Every version of ``name`` (or of every secret)."""
        if name is None:
            rows = await self._fetch(f"SELECT {_S_COLUMNS} FROM secrets ORDER BY name, version")
        else:
            rows = await self._fetch(
                f"SELECT {_S_COLUMNS} FROM secrets WHERE name = $1 ORDER BY version", name
            )
        return [_secret(r) for r in rows]

    async def rewrap_secrets(self, rewrap: Rewrap) -> int:
        """Wrap every data key again where ``rewrap`` says so, in one transaction."""

        async def run(conn: Any) -> int:
            rows = await conn.fetch(
                "SELECT name, version, wrapped_key FROM secrets ORDER BY name, version FOR UPDATE"
            )
            changed = 0
            for name, version, wrapped in rows:
                new = rewrap(bytes(wrapped))
                if new is not None:
                    await conn.execute(
                        "UPDATE secrets SET wrapped_key = $1 WHERE name = $2 AND version = $3",
                        new, name, version,
                    )  # fmt: skip
                    changed += 1
            return changed

        changed: int = await self._in_transaction(run)
        return changed

    async def delete_secret(self, name: str) -> int:
        """Remove every version of ``name``."""
        rows = await self._fetch("DELETE FROM secrets WHERE name = $1 RETURNING 1", name)
        return len(rows)

    async def put_template(self, record: TemplateRecord) -> bool:
        """Add a template version unless it is there already."""
        rows = await self._fetch(
            f"INSERT INTO prompt_templates({_T_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (name, version) DO NOTHING RETURNING 1",
            record.name, record.version, record.source, record.created_at, record.created_by,
        )  # fmt: skip
        return bool(rows)

    async def get_template(self, name: str, version: str) -> TemplateRecord:
        """One template version."""
        rows = await self._fetch(
            f"SELECT {_T_COLUMNS} FROM prompt_templates WHERE name = $1 AND version = $2",
            name,
            version,
        )
        if not rows:
            raise NotFoundError(f"no prompt template {name}@{version} in the store")
        return _template(rows[0])

    async def list_templates(self, name: str | None = None) -> list[TemplateRecord]:
        """Every version of ``name`` (or of every template)."""
        if name is None:
            rows = await self._fetch(
                f"SELECT {_T_COLUMNS} FROM prompt_templates ORDER BY name, created_at"
            )
        else:
            rows = await self._fetch(
                f"SELECT {_T_COLUMNS} FROM prompt_templates WHERE name = $1 ORDER BY created_at",
                name,
            )
        return [_template(r) for r in rows]

    async def put_routing(self, document: str, created_at: float, created_by: str) -> int:
        """Add the next version of the routing rules."""

        async def run(conn: Any) -> int:
            await self._lock(conn, "routing")
            version = 1 + int(
                await conn.fetchval("SELECT coalesce(max(version), 0) FROM routing_rules")
            )
            await conn.execute(
                f"INSERT INTO routing_rules({_R_COLUMNS}) VALUES ($1, $2, $3, $4)",
                version, document, created_at, created_by,
            )  # fmt: skip
            return version

        version: int = await self._in_transaction(run)
        return version

    async def get_routing(self) -> RoutingRecord | None:
        """The latest routing rules."""
        rows = await self._fetch(
            f"SELECT {_R_COLUMNS} FROM routing_rules ORDER BY version DESC LIMIT 1"
        )
        if not rows:
            return None
        row = rows[0]
        return RoutingRecord(int(row[0]), row[1], row[2], row[3])
