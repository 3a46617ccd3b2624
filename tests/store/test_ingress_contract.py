"""The IngressStore contract: idempotency keys, quarantine, API keys.

Typed to the whole Store where a test pairs ingress state with the events JobStore writes (an
idempotency key is claimed in the transaction of the event it names)."""

from __future__ import annotations

import asyncio
import time

import pytest

from sluice.errors import IdempotencyConflictError, NotFoundError
from sluice.store.base import (
    ApiKeyRecord,
    IdempotencyClaim,
    IngressStore,
    NewEvent,
    QuarantineItem,
    Store,
)


def _event(eid: str) -> NewEvent:
    now = time.time()
    return NewEvent(eid, "wf", "1", "t1", b'{"x": 1}', "p0", now, now + 60, original=b"orig")


def _item(qid: str, payload: bytes = b"{bad") -> QuarantineItem:
    return QuarantineItem(qid, "hooks", "wf", "t1", "body is not JSON", ("body is not JSON",),
                          payload, time.time())  # fmt: skip


class TestIdempotency:
    async def test_same_key_same_body_returns_the_first_receipt(self, store: Store) -> None:
        """A repeated key writes nothing and answers with the original event."""
        claim = IdempotencyClaim("t1", "k1", "hash-a")
        first = await store.insert_event(_event("e1"), claim)
        again = await store.insert_event(_event("e2"), claim)
        assert (first.event_id, first.duplicate) == ("e1", False)
        assert (again.event_id, again.duplicate) == ("e1", True)
        assert [e.id for e in await store.list_events()] == ["e1"]

    async def test_same_key_other_body_conflicts(self, store: Store) -> None:
        """A repeated key with another request hash raises and writes nothing."""
        await store.insert_event(_event("e1"), IdempotencyClaim("t1", "k1", "hash-a"))
        with pytest.raises(IdempotencyConflictError):
            await store.insert_event(_event("e2"), IdempotencyClaim("t1", "k1", "hash-b"))
        assert (await store.queue_depths()) == {"p0": 1}

    async def test_keys_are_per_tenant_and_expire(self, store: Store) -> None:
        """Another tenant's key is another key; a key past its window is free again."""
        await store.insert_event(_event("e1"), IdempotencyClaim("t1", "k1", "h"))
        other = await store.insert_event(_event("e2"), IdempotencyClaim("t2", "k1", "h"))
        assert not other.duplicate
        short = IdempotencyClaim("t1", "k1", "h", window_s=0.01)
        await asyncio.sleep(0.05)
        fresh = await store.insert_event(_event("e3"), short)
        assert (fresh.event_id, fresh.duplicate) == ("e3", False)

    async def test_concurrent_claims_make_one_event(self, store: Store) -> None:
        """Fifty concurrent inserts under one key leave one event."""
        claim = IdempotencyClaim("t1", "same", "h")
        receipts = await asyncio.gather(
            *(store.insert_event(_event(f"c{i}"), claim) for i in range(50))
        )
        assert len({r.event_id for r in receipts}) == 1
        assert len(await store.list_events()) == 1

    async def test_purge(self, store: Store) -> None:
        """Purged keys no longer answer."""
        await store.insert_event(_event("e1"), IdempotencyClaim("t1", "k1", "h"))
        assert await store.purge_idempotency(time.time() + 1) == 1
        again = await store.insert_event(_event("e2"), IdempotencyClaim("t1", "k1", "h"))
        assert not again.duplicate


class TestQuarantine:
    async def test_round_trip_and_drop(self, store: Store) -> None:
        """A quarantined payload reads back exactly, is listed, and can be dropped."""
        receipt = await store.quarantine(_item("q1"))
        assert (receipt.event_id, receipt.status) == ("q1", "quarantined")
        item = await store.get_quarantined("q1")
        assert (item.payload, item.problems) == (b"{bad", ("body is not JSON",))
        assert [i.id for i in await store.list_quarantine()] == ["q1"]
        assert await store.queue_depths() == {}
        assert await store.drop_quarantined("q1") is True
        assert await store.drop_quarantined("q1") is False
        with pytest.raises(NotFoundError):
            await store.get_quarantined("q1")

    async def test_promote_moves_the_entry_and_its_key(self, store: Store) -> None:
        """Promotion accepts the event atomically; the delivery's key now names the event."""
        claim = IdempotencyClaim("t1", "hook:1", "h")
        await store.quarantine(_item("q1"), claim)
        receipt = await store.promote_quarantined("q1", _event("e1"))
        assert receipt.event_id == "e1"
        assert await store.list_quarantine() == []
        again = await store.insert_event(_event("e2"), claim)
        assert (again.event_id, again.duplicate) == ("e1", True)
        with pytest.raises(NotFoundError):
            await store.promote_quarantined("q1", _event("e3"))
        assert await store.replayed_as("q1") == "e1"  # the sender's id still finds the event
        assert await store.replayed_as("q2") is None

    async def test_update_replaces_reason_and_problems(self, store: Store) -> None:
        """A replay that still fails leaves the entry with its new problems."""
        await store.quarantine(_item("q1"))
        assert await store.update_quarantined("q1", ["text: missing", "id: not a number"])
        item = await store.get_quarantined("q1")
        assert (item.reason, item.problems) == (
            "text: missing",
            ("text: missing", "id: not a number"),
        )
        assert (await store.list_quarantine())[0].reason == "text: missing"
        assert await store.update_quarantined("nope", ["x"]) is False


class TestApiKeys:
    async def test_put_get_list_revoke(self, store: IngressStore) -> None:
        """Keys are stored, read back, listed and revoked once."""
        record = ApiKeyRecord("abc", "t1", ("runner", "admin"), "hash", time.time())
        await store.put_api_key(record)
        assert await store.get_api_key("abc") == record
        assert [k.id for k in await store.list_api_keys()] == ["abc"]
        assert await store.revoke_api_key("abc") is True
        assert await store.revoke_api_key("abc") is False
        assert (await store.get_api_key("abc")).revoked_at is not None
        with pytest.raises(NotFoundError):
            await store.get_api_key("nope")

    async def test_expiry_and_generation(self, store: IngressStore) -> None:
        """The expiry time is kept; each revocation, and only a revocation, bumps the
        generation that key caches poll."""
        expires = time.time() + 3600
        await store.put_api_key(ApiKeyRecord("k1", "t1", ("operator",), "h", time.time(), None,
                                             expires))  # fmt: skip
        assert (await store.get_api_key("k1")).expires_at == expires
        before = await store.api_key_generation()
        await store.put_api_key(ApiKeyRecord("k2", "t1", ("runner",), "h", time.time()))
        assert await store.api_key_generation() == before
        assert await store.revoke_api_key("k1")
        assert await store.api_key_generation() == before + 1
        assert not await store.revoke_api_key("k1")
        assert await store.api_key_generation() == before + 1
