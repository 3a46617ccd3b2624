"""The audit trail names the first bad entry after each kind of tampering, on SQLite and on
PostgreSQL: the database is edited behind the store's back, as an intruder would."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sluice.governance import AuditLog
from sluice.governance.audit import rehash
from sluice.governance.signing import checkpoint_message, key_id, sign
from sluice.store.base import AuditRecord, Store
from sluice.store.postgres import PostgresStore
from sluice.store.sqlite import SqliteStore

COLUMNS = ("ts", "actor", "action", "resource", "before_digest", "after_digest", "why",
           "source", "prev_hash", "hash")  # fmt: skip


class Raw:
    """SQL on the store's database, not through the store (``?`` placeholders on both)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def execute(self, sql: str, *args: Any) -> None:
        if isinstance(self.store, SqliteStore):
            with sqlite3.connect(self.store.path) as conn:
                conn.execute(sql, args)
            return
        assert isinstance(self.store, PostgresStore)
        parts = sql.split("?")
        numbered = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))
        pg = await asyncpg.connect(
            self.store.dsn, server_settings={"search_path": self.store.schema}
        )
        try:
            await pg.execute(numbered, *args)
        finally:
            await pg.close()

    async def put(self, seq: int, e: AuditRecord) -> None:
        """Overwrite row ``seq`` with ``e``'s content (its own seq left as it is)."""
        sets = ", ".join(f"{c} = ?" for c in COLUMNS)
        await self.execute(f"UPDATE audit_log SET {sets} WHERE seq = ?", e.ts, e.actor,
                           e.action, e.resource, e.before, e.after, e.why, e.source,
                           e.prev_hash, e.hash, seq)  # fmt: skip

    async def insert(self, e: AuditRecord) -> None:
        marks = ", ".join("?" * (len(COLUMNS) + 1))
        await self.execute(f"INSERT INTO audit_log(seq, {', '.join(COLUMNS)}) VALUES ({marks})",
                           e.seq, e.ts, e.actor, e.action, e.resource, e.before, e.after,
                           e.why, e.source, e.prev_hash, e.hash)  # fmt: skip


def sealed(e: AuditRecord, **changes: Any) -> AuditRecord:
    """``e`` with ``changes`` and the hash its new content calls for."""
    changed = replace(e, **changes)
    return replace(changed, hash=rehash(changed))


async def rechain(raw: Raw, entries: list[AuditRecord], start: int) -> None:
    """Rewrite entries from ``start`` on with a new resource, every hash recomputed and the
    head moved: a chain that holds together again (only the signatures can tell)."""
    prev = entries[start - 2].hash
    for e in entries[start - 1 :]:
        new = sealed(e, resource=e.resource + "-forged", prev_hash=prev)
        await raw.put(e.seq, new)
        prev = new.hash
    await raw.execute("UPDATE audit_head SET hash = ?", prev)


Tamper = Callable[[Raw, list[AuditRecord]], Awaitable[None]]


async def edited(raw: Raw, es: list[AuditRecord]) -> None:
    await raw.execute("UPDATE audit_log SET resource = 'principal/mallory' WHERE seq = 6")


async def rewritten(raw: Raw, es: list[AuditRecord]) -> None:
    await raw.put(6, sealed(es[5], actor="mallory"))


async def deleted(raw: Raw, es: list[AuditRecord]) -> None:
    await raw.execute("DELETE FROM audit_log WHERE seq = 6")


async def inserted(raw: Raw, es: list[AuditRecord]) -> None:
    await raw.execute("UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 6")
    await raw.execute("UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1006")
    await raw.insert(sealed(es[5], actor="mallory", prev_hash=es[4].hash))
    await raw.execute("UPDATE audit_head SET seq = 11")


async def reordered(raw: Raw, es: list[AuditRecord]) -> None:
    await raw.put(6, es[6])
    await raw.put(7, es[5])


async def cut_past_a_checkpoint(raw: Raw, es: list[AuditRecord]) -> None:
    await raw.execute("DELETE FROM audit_log WHERE seq > 5")
    await raw.execute("UPDATE audit_head SET seq = 5, hash = ?", es[4].hash)


async def cut_the_tail(raw: Raw, es: list[AuditRecord]) -> None:
    await raw.execute("DELETE FROM audit_log WHERE seq > 8")


async def chain_recomputed(raw: Raw, es: list[AuditRecord]) -> None:
    await rechain(raw, es, 6)


async def resigned_with_another_key(raw: Raw, es: list[AuditRecord]) -> None:
    await rechain(raw, es, 6)
    forged = await raw.store.audit_entry(8)
    mallory = Ed25519PrivateKey.generate()
    signature = sign(mallory, checkpoint_message(8, forged.hash, 1.0))
    await raw.execute("UPDATE audit_checkpoints SET hash = ?, ts = 1.0, key_id = ?,"
                      " signature = ? WHERE seq = 8", forged.hash,
                      key_id(mallory.public_key()), signature)  # fmt: skip


async def checkpoint_edited(raw: Raw, es: list[AuditRecord]) -> None:
    await raw.execute("UPDATE audit_checkpoints SET hash = ? WHERE seq = 4", es[4].hash)


async def added_past_the_head(raw: Raw, es: list[AuditRecord]) -> None:
    await raw.insert(sealed(replace(es[9], seq=11), prev_hash=es[9].hash))


#: Each tampering, the entry the report must name, and words of its reason.
CASES: list[tuple[Tamper, int, str]] = [
    (edited, 6, "entry 6 was edited"),
    (rewritten, 6, "entry 6 was rewritten"),
    (deleted, 6, "entry 6 is missing"),
    (inserted, 6, "entry 6 was inserted"),
    (reordered, 6, "entry 6 does not follow entry 5"),
    (cut_past_a_checkpoint, 6, "cut off after entry 5: checkpoint 8"),
    (cut_the_tail, 9, "cut off after entry 8: the head says 10"),
    (chain_recomputed, 5, "entries 5 to 8 were rewritten"),
    (resigned_with_another_key, 8, "checkpoint 8 is not validly signed"),
    (checkpoint_edited, 4, "checkpoint 4 is not validly signed"),
    (added_past_the_head, 11, "entry 11 was added past the head"),
]


async def trail(store: Store, key: Ed25519PrivateKey) -> AuditLog:
    """Ten entries, checkpoints at 1 (a new writer's first), 4 and 8."""
    audit = AuditLog(store, key, checkpoint_every=4, checkpoint_interval_s=1e9)
    for i in range(10):
        await audit.append("ada", "principal.create", f"principal/p{i}", None, {"n": i},
                           "because", "cli")  # fmt: skip
    assert [cp.seq for cp in await store.checkpoints()] == [1, 4, 8]
    return audit


@pytest.mark.parametrize(("tamper", "named", "why"), CASES, ids=[c[0].__name__ for c in CASES])
async def test_tampering_is_detected_and_named(
    store: Store, tamper: Tamper, named: int, why: str
) -> None:
    """Each kind of tampering fails verification, naming the first bad entry."""
    key = Ed25519PrivateKey.generate()
    audit = await trail(store, key)
    assert (await audit.verify()).ok
    await tamper(Raw(store), await store.audit_entries())
    # A verifier elsewhere: a new AuditLog with the public key only.
    report = await AuditLog(store, verify_key=key.public_key()).verify()
    assert (report.ok, report.first_bad) == (False, named), report
    assert why in (report.problem or ""), report


async def test_an_untouched_trail_verifies(store: Store) -> None:
    """Ten entries and three checkpoints verify, signatures checked."""
    key = Ed25519PrivateKey.generate()
    report = await (await trail(store, key)).verify()
    assert report.as_dict() == {"ok": True, "entries": 10, "checkpoints": 3,
                                "signatures_checked": True, "first_bad": None,
                                "problem": None}  # fmt: skip


async def test_the_entry_keeps_digests_not_states(store: Store) -> None:
    """before/after are the SHA-256 of canonical JSON: key order does not matter, values do."""
    audit = AuditLog(store)
    one = await audit.append("ada", "x", "r", {"a": 1, "b": [1, 2]}, {"b": 2, "a": 1})
    two = await audit.append("ada", "x", "r", {"b": [1, 2], "a": 1}, None)
    assert one.before == two.before
    assert len(one.before or "") == 64
    assert one.after != one.before
    assert two.after is None
    assert "hunter2" not in repr(await audit.append("ada", "x", "r", {"secret": "hunter2"}))


async def test_a_long_reason_is_cut(store: Store) -> None:
    """Reasons are bounded: entries stay small whatever a caller sends."""
    entry = await AuditLog(store).append("ada", "x", "r", why="y" * 10_000)
    assert entry.why == "y" * 500
    assert (await AuditLog(store).verify()).ok
