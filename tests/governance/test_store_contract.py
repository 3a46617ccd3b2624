"""The GovernanceStore contract, on SQLite and PostgreSQL: principals, roles, tokens, audit."""

from __future__ import annotations

import time

import pytest

from sluice.errors import NotFoundError
from sluice.store.base import (
    GENESIS_HASH,
    AuditRecord,
    CheckpointRecord,
    PrincipalRecord,
    Store,
    TokenRecord,
)


async def test_principals_and_roles(store: Store) -> None:
    """Names are unique; roles are granted and revoked once; disabling is recorded."""
    now = time.time()
    assert await store.put_principal(PrincipalRecord("p1", "ada", "user", ("viewer",), now))
    assert not await store.put_principal(PrincipalRecord("p2", "ada", "service", (), now))
    assert await store.put_principal(PrincipalRecord("p3", "bot", "service", (), now))
    ada = await store.get_principal("ada")
    assert (ada.id, ada.kind, ada.roles, ada.disabled_at) == ("p1", "user", ("viewer",), None)
    assert (await store.principal_by_id("p3")).roles == ()
    assert await store.grant_role("ada", "operator")
    assert not await store.grant_role("ada", "operator")
    assert (await store.get_principal("ada")).roles == ("operator", "viewer")
    assert await store.revoke_role("ada", "viewer")
    assert not await store.revoke_role("ada", "viewer")
    assert [p.name for p in await store.list_principals()] == ["ada", "bot"]
    assert await store.disable_principal("ada", now + 1)
    assert not await store.disable_principal("ada", now + 2)
    assert (await store.get_principal("ada")).disabled_at == now + 1
    with pytest.raises(NotFoundError):
        await store.get_principal("nobody")
    with pytest.raises(NotFoundError):
        await store.principal_by_id("nope")
    with pytest.raises(NotFoundError):
        await store.grant_role("nobody", "viewer")
    with pytest.raises(NotFoundError):
        await store.revoke_role("nobody", "viewer")


async def test_tokens(store: Store) -> None:
    """A token is stored with its hash, read back by id, and revoked once."""
    await store.put_token(TokenRecord("t1", "p1", "h" * 64, 1.0, 2.0))
    assert await store.get_token("t1") == TokenRecord("t1", "p1", "h" * 64, 1.0, 2.0)
    with pytest.raises(NotFoundError):
        await store.get_token("t2")
    assert await store.revoke_token("t1", 3.0)
    assert not await store.revoke_token("t1", 4.0)
    assert not await store.revoke_token("t2", 4.0)
    assert (await store.get_token("t1")).revoked_at == 3.0


def _entry(seq: int, prev: str) -> AuditRecord:
    return AuditRecord(seq, 1.5, "ada", "x", f"r/{seq}", None, "d", "", "cli", prev, f"{seq:064}")


async def test_audit_appends_after_the_head(store: Store) -> None:
    """append_audit hands the head to the sealer and moves it; entries read back in order."""
    assert await store.audit_head() == (0, GENESIS_HASH)
    seen: list[tuple[int, str]] = []

    def seal(seq: int, prev: str) -> AuditRecord:
        seen.append((seq, prev))
        return _entry(seq + 1, prev)

    first = await store.append_audit(seal)
    second = await store.append_audit(seal)
    assert seen == [(0, GENESIS_HASH), (1, first.hash)]
    assert await store.audit_head() == (2, second.hash)
    assert await store.audit_entries() == [first, second]
    assert await store.audit_entries(after=1, limit=5) == [second]
    assert await store.audit_entry(2) == second
    with pytest.raises(NotFoundError):
        await store.audit_entry(3)


async def test_checkpoints(store: Store) -> None:
    """One checkpoint per sequence number, read back oldest first."""
    one = CheckpointRecord(5, "a" * 64, 1.0, "k", "sig")
    assert await store.put_checkpoint(one)
    assert not await store.put_checkpoint(CheckpointRecord(5, "b" * 64, 2.0, "k", "sig2"))
    two = CheckpointRecord(2, "c" * 64, 3.0, "k", "sig3")
    assert await store.put_checkpoint(two)
    assert await store.checkpoints() == [two, one]
