"""PostgreSQL side of ingress state: idempotency keys, quarantine, API keys, re-encoding.

Kept apart from :mod:`sluice.store.postgres` so each module stays one concept;
:class:`PostgresIngressMixin` adds these methods to
:class:`~sluice.store.postgres.PostgresStore`. An idempotency key is claimed with
``INSERT ... ON CONFLICT`` in the same transaction as the event or quarantine entry it names:
two concurrent requests with one key serialise on the key's row, and only one writes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import asyncpg
import orjson

from sluice.errors import IdempotencyConflictError, NotFoundError, StoreError
from sluice.store import postgres_sql as sql
from sluice.store.at_rest import key_digest, needs_sealing, open_text, reseal_text, seal_text
from sluice.store.base import ApiKeyRecord, IdempotencyClaim, NewEvent, QuarantineItem, Receipt
from sluice.store.codec import PayloadCodec

T = TypeVar("T")
QUARANTINED = "quarantined"
_Q_COLUMNS = "id, source, workflow, tenant, reason, problems, payload, created_at"
_K_COLUMNS = "id, tenant, roles, secret_hash, created_at, revoked_at, expires_at"
# (table, key columns, payload column) of every encoded payload, for re-encryption.
PAYLOAD_COLUMNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("events", ("id",), "input"),
    ("events", ("id",), "result"),
    ("events", ("id",), "original"),
    ("jobs", ("id",), "input"),
    ("step_results", ("event_id", "step"), "output"),
    ("quarantine", ("id",), "payload"),
)
# The same for text derived from payloads (errors, reasons), sealed by ``store.at_rest``.
TEXT_COLUMNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("events", ("id",), "error"),
    ("jobs", ("id",), "last_error"),
    ("quarantine", ("id",), "reason"),
    ("quarantine", ("id",), "problems"),
)

# Takes the key when it is free or its window has passed; returns no row when it is held.
_CLAIM = """
INSERT INTO idempotency(tenant, key, request_hash, event_id, status, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant, key) DO UPDATE SET request_hash = excluded.request_hash,
    event_id = excluded.event_id, status = excluded.status, created_at = excluded.created_at
WHERE idempotency.created_at < $7
RETURNING 1
"""
_HELD = """
SELECT i.request_hash, i.event_id, coalesce(e.state, i.status)
FROM idempotency i LEFT JOIN events e ON e.id = i.event_id
WHERE i.tenant = $1 AND i.key = $2
"""


async def claim_idempotency(
    conn: Any, claim: IdempotencyClaim, target_id: str, status: str, now: float
) -> Receipt | None:
    """Claim ``claim.key`` for ``target_id``, or return the receipt of whoever holds it.

    The table keeps the key's digest, never the key (a client may put anything in it).
    """
    key = key_digest(claim.key)
    args = (claim.tenant, key, claim.request_hash, target_id, status, now)
    if await conn.fetchval(_CLAIM, *args, now - claim.window_s) is not None:
        return None
    row = await conn.fetchrow(_HELD, claim.tenant, key)
    if row[0] != claim.request_hash:
        raise IdempotencyConflictError(
            "this idempotency key was used with a different request body"
        )
    return Receipt(row[1], row[2], duplicate=True)


class PostgresIngressMixin:
    """Ingress-state methods of the PostgreSQL store (see the module docstring)."""

    codec: PayloadCodec
    channel: str
    _in_transaction: Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]]
    _fetch: Callable[..., Awaitable[list[Any]]]
    _apply_delta: Callable[[Counter[str]], None]

    def event_columns(self, events: Sequence[NewEvent]) -> list[Any]:
        """The arguments of :data:`~sluice.store.postgres_sql.INSERT_EVENTS` for ``events``."""
        encode = self.codec.encode
        return [
            [e.id for e in events], [e.workflow for e in events], [e.version for e in events],
            [e.tenant for e in events], [encode(e.input) for e in events],
            [e.created_at for e in events], [e.deadline for e in events],
            [e.first_pool for e in events],
            [None if e.original is None else encode(e.original) for e in events],
            [e.trace for e in events], self.channel, [e.flag for e in events],
        ]  # fmt: skip

    async def insert_rows(self, conn: Any, events: Sequence[NewEvent]) -> Counter[str]:
        """Insert events and their first jobs in the caller's transaction; return the delta."""
        try:
            rows = await conn.fetch(sql.INSERT_EVENTS, *self.event_columns(events))
        except asyncpg.UniqueViolationError as exc:
            if len(events) == 1:
                raise StoreError(f"event {events[0].id} already exists") from exc
            raise
        return Counter(r[0] for r in rows if r[0] is not None)

    async def _insert_claimed(self, event: NewEvent, claim: IdempotencyClaim) -> Receipt:
        async def run(conn: Any) -> tuple[Receipt, Counter[str]]:
            held = await claim_idempotency(conn, claim, event.id, "accepted", time.time())
            if held is not None:
                return held, Counter()
            return Receipt(event.id, "accepted"), await self.insert_rows(conn, [event])

        receipt: Receipt
        receipt, delta = await self._in_transaction(run)
        self._apply_delta(delta)
        return receipt

    async def quarantine(
        self, item: QuarantineItem, idempotency: IdempotencyClaim | None = None
    ) -> Receipt:
        """Keep a malformed event aside with its reason (sealed like the payload)."""
        payload = self.codec.encode(item.payload)
        reason = seal_text(self.codec, item.reason)
        problems = seal_text(self.codec, orjson.dumps(list(item.problems)).decode())

        async def run(conn: Any) -> Receipt:
            if idempotency is not None:
                held = await claim_idempotency(conn, idempotency, item.id, QUARANTINED, time.time())
                if held is not None:
                    return held
            await conn.execute(
                f"INSERT INTO quarantine({_Q_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                item.id, item.source, item.workflow, item.tenant, reason, problems, payload,
                item.created_at,
            )  # fmt: skip
            return Receipt(item.id, QUARANTINED)

        receipt: Receipt = await self._in_transaction(run)
        return receipt

    def _item(self, row: Sequence[Any]) -> QuarantineItem:
        problems = orjson.loads(open_text(self.codec, row[5]) or "[]")
        return QuarantineItem(
            row[0], row[1], row[2], row[3], open_text(self.codec, row[4]) or "",
            tuple(problems), self.codec.decode(row[6]), row[7],
        )  # fmt: skip

    async def list_quarantine(self, limit: int = 50) -> list[QuarantineItem]:
        """Quarantined events, newest first."""
        query = f"SELECT {_Q_COLUMNS} FROM quarantine ORDER BY created_at DESC LIMIT $1"
        return [self._item(r) for r in await self._fetch(query, limit)]

    async def get_quarantined(self, item_id: str) -> QuarantineItem:
        """One quarantined event."""
        rows = await self._fetch(f"SELECT {_Q_COLUMNS} FROM quarantine WHERE id = $1", item_id)
        if not rows:
            raise NotFoundError(f"no quarantined event {item_id!r}")
        return self._item(rows[0])

    async def drop_quarantined(self, item_id: str) -> bool:
        """Delete a quarantined event."""
        rows = await self._fetch("DELETE FROM quarantine WHERE id = $1 RETURNING id", item_id)
        return bool(rows)

    async def promote_quarantined(self, item_id: str, event: NewEvent) -> Receipt:
        """Insert the repaired event and delete its quarantine entry in one transaction."""

        async def run(conn: Any) -> Counter[str]:
            if await conn.fetchval("DELETE FROM quarantine WHERE id = $1 RETURNING 1", item_id):
                delta = await self.insert_rows(conn, [event])
                # A sender retrying the original delivery now gets the accepted event, and the
                # id it was first given still finds the event.
                await conn.execute(
                    "UPDATE idempotency SET event_id = $1, status = 'accepted' WHERE event_id = $2",
                    event.id,
                    item_id,
                )
                await conn.execute(
                    "INSERT INTO quarantine_replays(id, event_id, replayed_at) VALUES ($1, $2, $3)",
                    item_id,
                    event.id,
                    time.time(),
                )
                return delta
            raise NotFoundError(f"no quarantined event {item_id!r}")

        self._apply_delta(await self._in_transaction(run))
        return Receipt(event.id, "accepted")

    async def update_quarantined(self, item_id: str, problems: Sequence[str]) -> bool:
        """Replace an entry's reason and problems after a replay that still failed."""
        rows = await self._fetch(
            "UPDATE quarantine SET reason = $1, problems = $2 WHERE id = $3 RETURNING 1",
            seal_text(self.codec, problems[0] if problems else ""),
            seal_text(self.codec, orjson.dumps(list(problems)).decode()),
            item_id,
        )
        return bool(rows)

    async def replayed_as(self, item_id: str) -> str | None:
        """The event a replayed quarantine entry became."""
        rows = await self._fetch("SELECT event_id FROM quarantine_replays WHERE id = $1", item_id)
        return str(rows[0][0]) if rows else None

    async def purge_idempotency(self, older_than: float) -> int:
        """Forget idempotency keys claimed before ``older_than``."""
        query = "DELETE FROM idempotency WHERE created_at < $1 RETURNING 1"
        return len(await self._fetch(query, older_than))

    async def put_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new API key (only its hash)."""
        await self._fetch(
            f"INSERT INTO api_keys({_K_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            record.id, record.tenant, list(record.roles), record.secret_hash, record.created_at,
            record.revoked_at, record.expires_at,
        )  # fmt: skip

    @staticmethod
    def _key(row: Sequence[Any]) -> ApiKeyRecord:
        return ApiKeyRecord(row[0], row[1], tuple(row[2]), row[3], row[4], row[5], row[6])

    async def get_api_key(self, key_id: str) -> ApiKeyRecord:
        """One API key."""
        rows = await self._fetch(f"SELECT {_K_COLUMNS} FROM api_keys WHERE id = $1", key_id)
        if not rows:
            raise NotFoundError(f"no API key {key_id!r}")
        return self._key(rows[0])

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every API key, newest first."""
        query = f"SELECT {_K_COLUMNS} FROM api_keys ORDER BY created_at DESC"
        return [self._key(r) for r in await self._fetch(query)]

    async def api_key_generation(self) -> int:
        """The revocation generation (one primary-key read)."""
        rows = await self._fetch("SELECT generation FROM api_key_generation WHERE id = 1")
        return int(rows[0][0])

    async def revoke_api_key(self, key_id: str) -> bool:
        """Mark a key revoked and bump the generation, in one transaction."""

        async def run(conn: Any) -> bool:
            revoked = await conn.fetchval(
                "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL"
                " RETURNING 1",
                time.time(),
                key_id,
            )
            if revoked is None:
                return False
            await conn.execute("UPDATE api_key_generation SET generation = generation + 1")
            return True

        done: bool = await self._in_transaction(run)
        return done

    async def reencode_payloads(self, batch: int = 500) -> int:
        """Re-encrypt payloads sealed with a key that is no longer the active one.

        Pages through each payload column in key order, so memory stays bounded by ``batch``.
        """
        needs: Callable[[bytes], bool] | None = getattr(self.codec, "needs_reencryption", None)
        if needs is None:
            return 0
        total = 0
        for table, keys, column in (*PAYLOAD_COLUMNS, *TEXT_COLUMNS):
            text = (table, keys, column) in TEXT_COLUMNS
            key_list = ", ".join(keys)
            after: tuple[Any, ...] | None = None
            while True:
                marks = ", ".join(f"${i + 2}" for i in range(len(keys)))
                where = "" if after is None else f" AND ({key_list}) > ({marks})"
                query = (
                    f"SELECT {key_list}, {column} FROM {table} WHERE {column} IS NOT NULL{where}"
                    f" ORDER BY {key_list} LIMIT $1"
                )
                rows = await self._fetch(query, batch, *(after or ()))
                if not rows:
                    break
                after = tuple(rows[-1][: len(keys)])
                stale = [
                    (self._reencode(r[len(keys)], text=text), *r[: len(keys)])
                    for r in rows
                    if (needs_sealing(self.codec, r[len(keys)]) if text else needs(r[len(keys)]))
                ]
                if stale:
                    match = " AND ".join(f"{k} = ${i + 2}" for i, k in enumerate(keys))
                    update = f"UPDATE {table} SET {column} = $1 WHERE {match}"
                    await self._in_transaction(partial(_execute_many, query=update, rows=stale))
                    total += len(stale)
        return total

    def _reencode(self, stored: bytes, *, text: bool) -> bytes:
        if text:
            return reseal_text(self.codec, stored)
        return self.codec.encode(self.codec.decode(stored))


async def _execute_many(conn: Any, query: str, rows: Sequence[Sequence[Any]]) -> None:
    await conn.executemany(query, rows)
