"""SQLite side of ingress state: idempotency keys, quarantine, API keys, payload re-encoding.

Kept apart from :mod:`sluice.store.sqlite` so each module stays one concept; the functions
here run inside the writer's transactions, and :class:`SqliteIngressMixin` adds the async
methods to :class:`~sluice.store.sqlite.SqliteStore`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import orjson

from sluice.errors import IdempotencyConflictError, NotFoundError, StoreError
from sluice.store.at_rest import key_digest, needs_sealing, open_text, reseal_text, seal_text
from sluice.store.base import (
    ApiKeyRecord,
    IdempotencyClaim,
    NewEvent,
    QuarantineItem,
    Receipt,
)
from sluice.store.codec import PayloadCodec
from sluice.store.sqlite_writer import Delta

T = TypeVar("T")
QUARANTINED = "quarantined"
_Q_COLUMNS = "id, source, workflow, tenant, reason, problems, payload, created_at"
_K_COLUMNS = "id, tenant, roles, secret_hash, created_at, revoked_at, expires_at"
# (table, key expression, payload column, a key below every real one) of every encoded
# payload, for re-encryption. SQLite orders every integer before every string, hence -1 or "".
PAYLOAD_COLUMNS: tuple[tuple[str, str, str, int | str], ...] = (
    ("events", "id", "input", ""),
    ("events", "id", "result", ""),
    ("events", "id", "original", ""),
    ("jobs", "id", "input", -1),
    ("step_results", "event_id || ':' || step", "output", ""),
    ("quarantine", "id", "payload", ""),
)
# The same for text derived from payloads (errors, reasons), sealed by ``store.at_rest``.
TEXT_COLUMNS: tuple[tuple[str, str, str, int | str], ...] = (
    ("events", "id", "error", ""),
    ("jobs", "id", "last_error", -1),
    ("quarantine", "id", "reason", ""),
    ("quarantine", "id", "problems", ""),
)


def claim_idempotency(
    conn: sqlite3.Connection, claim: IdempotencyClaim, target_id: str, status: str, now: float
) -> Receipt | None:
    """Claim ``claim.key`` for ``target_id``, or return the receipt of whoever holds it.

    The table keeps the key's digest, never the key (a client may put anything in it).
    """
    key = key_digest(claim.key)
    # The common case is a new key: try to take it first, and look only when it is taken.
    taken = conn.execute(
        "INSERT INTO idempotency(tenant, key, request_hash, event_id, status, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (claim.tenant, key, claim.request_hash, target_id, status, now),
    ).rowcount
    if taken == 1:
        return None
    row = conn.execute(
        "SELECT request_hash, event_id, status, created_at FROM idempotency"
        " WHERE tenant = ? AND key = ?",
        (claim.tenant, key),
    ).fetchone()
    if row is not None and row[3] >= now - claim.window_s:
        if row[0] != claim.request_hash:
            raise IdempotencyConflictError(
                "this idempotency key was used with a different request body"
            )
        state = conn.execute("SELECT state FROM events WHERE id = ?", (row[1],)).fetchone()
        return Receipt(row[1], state[0] if state else row[2], duplicate=True)
    conn.execute(
        "INSERT OR REPLACE INTO idempotency(tenant, key, request_hash, event_id, status,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (claim.tenant, key, claim.request_hash, target_id, status, now),
    )
    return None


def insert_event_rows(
    conn: sqlite3.Connection, event: NewEvent, stored: bytes, original: bytes | None, delta: Delta
) -> None:
    """The event row and its first job (inside the caller's transaction)."""
    try:
        conn.execute(
            "INSERT INTO events(id, workflow, version, tenant, state, input, created_at,"
            " deadline, original, trace, flag) VALUES (?, ?, ?, ?, 'accepted', ?, ?, ?, ?, ?, ?)",
            (event.id, event.workflow, event.version, event.tenant, stored, event.created_at,
             event.deadline, original, event.trace, event.flag),
        )  # fmt: skip
    except sqlite3.IntegrityError as exc:
        raise StoreError(f"event {event.id} already exists") from exc
    conn.execute(
        "INSERT INTO jobs(event_id, step, pool, workflow, version, tenant, state, input,"
        " ready_at, run_at, deadline, trace, flag)"
        " VALUES (?, 0, ?, ?, ?, ?, 'ready', ?, ?, ?, ?, ?, ?)",
        (event.id, event.first_pool, event.workflow, event.version, event.tenant, stored,
         event.created_at, event.created_at, event.deadline, event.trace, event.flag),
    )  # fmt: skip
    delta[event.first_pool] += 1


class SqliteIngressMixin:
    """Ingress-state methods of the SQLite store (see the module docstring)."""

    codec: PayloadCodec
    _write: Callable[..., Any]
    _read: Callable[..., Any]

    def _encode_event(self, event: NewEvent) -> tuple[bytes, bytes | None]:
        original = None if event.original is None else self.codec.encode(event.original)
        return self.codec.encode(event.input), original

    async def insert_event(
        self, event: NewEvent, idempotency: IdempotencyClaim | None = None
    ) -> Receipt:
        """Write the event and its first job (and claim its idempotency key) atomically."""
        stored, original = self._encode_event(event)

        def op(conn: sqlite3.Connection, delta: Delta) -> Receipt:
            if idempotency is not None:
                held = claim_idempotency(conn, idempotency, event.id, "accepted", time.time())
                if held is not None:
                    return held
            insert_event_rows(conn, event, stored, original, delta)
            return Receipt(event.id, "accepted")

        receipt: Receipt = await self._write(op)
        return receipt

    async def quarantine(
        self, item: QuarantineItem, idempotency: IdempotencyClaim | None = None
    ) -> Receipt:
        """Keep a malformed event aside with its reason (sealed like the payload)."""
        payload = self.codec.encode(item.payload)
        reason = seal_text(self.codec, item.reason)
        problems = seal_text(self.codec, orjson.dumps(list(item.problems)).decode())

        def op(conn: sqlite3.Connection, delta: Delta) -> Receipt:
            if idempotency is not None:
                held = claim_idempotency(conn, idempotency, item.id, QUARANTINED, time.time())
                if held is not None:
                    return held
            conn.execute(
                f"INSERT INTO quarantine({_Q_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (item.id, item.source, item.workflow, item.tenant, reason, problems,
                 payload, item.created_at),
            )  # fmt: skip
            return Receipt(item.id, QUARANTINED)

        receipt: Receipt = await self._write(op)
        return receipt

    def _item(self, row: Sequence[Any]) -> QuarantineItem:
        problems = orjson.loads(open_text(self.codec, row[5]) or "[]")
        return QuarantineItem(
            row[0], row[1], row[2], row[3], open_text(self.codec, row[4]) or "",
            tuple(problems), self.codec.decode(row[6]), row[7],
        )  # fmt: skip

    async def list_quarantine(self, limit: int = 50) -> list[QuarantineItem]:
        """Quarantined events, newest first."""
        sql = f"SELECT {_Q_COLUMNS} FROM quarantine ORDER BY created_at DESC LIMIT ?"
        rows = await self._read(lambda c: c.execute(sql, (limit,)).fetchall())
        return [self._item(r) for r in rows]

    async def get_quarantined(self, item_id: str) -> QuarantineItem:
        """One quarantined event."""
        sql = f"SELECT {_Q_COLUMNS} FROM quarantine WHERE id = ?"
        row = await self._read(lambda c: c.execute(sql, (item_id,)).fetchone())
        if row is None:
            raise NotFoundError(f"no quarantined event {item_id!r}")
        return self._item(row)

    async def drop_quarantined(self, item_id: str) -> bool:
        """Delete a quarantined event."""

        def op(conn: sqlite3.Connection, delta: Delta) -> bool:
            return conn.execute("DELETE FROM quarantine WHERE id = ?", (item_id,)).rowcount == 1

        dropped: bool = await self._write(op)
        return dropped

    async def promote_quarantined(self, item_id: str, event: NewEvent) -> Receipt:
        """Insert the repaired event and delete its quarantine entry in one transaction."""
        stored, original = self._encode_event(event)

        def op(conn: sqlite3.Connection, delta: Delta) -> Receipt:
            if conn.execute("DELETE FROM quarantine WHERE id = ?", (item_id,)).rowcount != 1:
                raise NotFoundError(f"no quarantined event {item_id!r}")
            insert_event_rows(conn, event, stored, original, delta)
            # A sender retrying the original delivery now gets the accepted event, and the id
            # it was first given still finds the event.
            conn.execute(
                "UPDATE idempotency SET event_id = ?, status = 'accepted' WHERE event_id = ?",
                (event.id, item_id),
            )
            conn.execute(
                "INSERT INTO quarantine_replays(id, event_id, replayed_at) VALUES (?, ?, ?)",
                (item_id, event.id, time.time()),
            )
            return Receipt(event.id, "accepted")

        receipt: Receipt = await self._write(op)
        return receipt

    async def update_quarantined(self, item_id: str, problems: Sequence[str]) -> bool:
        """Replace an entry's reason and problems after a replay that still failed."""
        reason = seal_text(self.codec, problems[0] if problems else "")
        sealed = seal_text(self.codec, orjson.dumps(list(problems)).decode())

        def op(conn: sqlite3.Connection, delta: Delta) -> bool:
            cur = conn.execute(
                "UPDATE quarantine SET reason = ?, problems = ? WHERE id = ?",
                (reason, sealed, item_id),
            )
            return cur.rowcount == 1

        updated: bool = await self._write(op)
        return updated

    async def replayed_as(self, item_id: str) -> str | None:
        """The event a replayed quarantine entry became."""
        sql = "SELECT event_id FROM quarantine_replays WHERE id = ?"
        row = await self._read(lambda c: c.execute(sql, (item_id,)).fetchone())
        return None if row is None else str(row[0])

    async def purge_idempotency(self, older_than: float) -> int:
        """Forget idempotency keys claimed before ``older_than``."""

        def op(conn: sqlite3.Connection, delta: Delta) -> int:
            return conn.execute(
                "DELETE FROM idempotency WHERE created_at < ?", (older_than,)
            ).rowcount

        purged: int = await self._write(op)
        return purged

    async def put_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new API key (only its hash)."""

        def op(conn: sqlite3.Connection, delta: Delta) -> None:
            conn.execute(
                f"INSERT INTO api_keys({_K_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.id, record.tenant, ",".join(record.roles), record.secret_hash,
                 record.created_at, record.revoked_at, record.expires_at),
            )  # fmt: skip

        await self._write(op)

    @staticmethod
    def _key(row: Sequence[Any]) -> ApiKeyRecord:
        roles = tuple(r for r in row[2].split(",") if r)
        return ApiKeyRecord(row[0], row[1], roles, row[3], row[4], row[5], row[6])

    async def get_api_key(self, key_id: str) -> ApiKeyRecord:
        """One API key."""
        sql = f"SELECT {_K_COLUMNS} FROM api_keys WHERE id = ?"
        row = await self._read(lambda c: c.execute(sql, (key_id,)).fetchone())
        if row is None:
            raise NotFoundError(f"no API key {key_id!r}")
        return self._key(row)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every API key, newest first."""
        sql = f"SELECT {_K_COLUMNS} FROM api_keys ORDER BY created_at DESC"
        return [self._key(r) for r in await self._read(lambda c: c.execute(sql).fetchall())]

    async def api_key_generation(self) -> int:
        """The revocation generation (one primary-key read)."""
        sql = "SELECT generation FROM api_key_generation WHERE id = 1"
        row = await self._read(lambda c: c.execute(sql).fetchone())
        return int(row[0])

    async def revoke_api_key(self, key_id: str) -> bool:
        """Mark a key revoked and bump the generation, in one transaction."""

        def op(conn: sqlite3.Connection, delta: Delta) -> bool:
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
            if cur.rowcount != 1:
                return False
            conn.execute("UPDATE api_key_generation SET generation = generation + 1")
            return True

        revoked: bool = await self._write(op)
        return revoked

    async def reencode_payloads(self, batch: int = 500) -> int:
        """Re-encrypt payloads sealed with a key that is no longer the active one, and seal
        payload-derived text stored plain or with an old key (see ``TEXT_COLUMNS``).

        Pages through each column by key, so memory stays bounded by ``batch``.
        """
        needs: Callable[[bytes], bool] | None = getattr(self.codec, "needs_reencryption", None)
        if needs is None:
            return 0
        codec = self.codec

        def reencode(stored: Any) -> bytes | None:
            return codec.encode(codec.decode(stored)) if needs(stored) else None

        def reseal(stored: Any) -> bytes | None:
            return reseal_text(codec, stored) if needs_sealing(codec, stored) else None

        total = 0
        for columns, rewrite in ((PAYLOAD_COLUMNS, reencode), (TEXT_COLUMNS, reseal)):
            for table, key, column, first in columns:
                total += await self._rewrite_column(table, key, column, first, rewrite, batch)
        return total

    async def _rewrite_column(
        self,
        table: str,
        key: str,
        column: str,
        first: int | str,
        rewrite: Callable[[Any], bytes | None],
        batch: int,
    ) -> int:
        """Page through ``table.column`` by ``key`` and store ``rewrite(value)`` wherever it
        is not ``None``; the number of rows rewritten."""
        total = 0
        after: int | str = first
        while True:
            sql = (
                f"SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL"
                f" AND {key} > ? ORDER BY {key} LIMIT ?"
            )
            rows = await self._read(partial(_fetch, sql=sql, params=(after, batch)))
            if not rows:
                return total
            after = rows[-1][0]
            stale = [(new, k) for k, v in rows if (new := rewrite(v)) is not None]
            if stale:
                update = f"UPDATE {table} SET {column} = ? WHERE {key} = ?"
                await self._write(partial(_execute_many, sql=update, rows=stale))
                total += len(stale)


def _fetch(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def _execute_many(
    conn: sqlite3.Connection, delta: Delta, sql: str, rows: Sequence[Sequence[Any]]
) -> None:
    conn.executemany(sql, rows)
