"""The ManagedStore contract on SQLite and PostgreSQL: secret versions, template versions,
routing versions (the ``store`` fixture gives each test its own file or schema)."""

from __future__ import annotations

import asyncio
import time

import pytest

from sluice.errors import NotFoundError
from sluice.store.base import Store
from sluice.store.managed import TemplateRecord


async def test_secret_versions_count_up_per_name(store: Store) -> None:
    """Each put is the next version of its name; other names count on their own."""
    now = time.time()
    assert await store.put_secret("a", b"wk1", b"v1", now, "ada") == 1
    assert await store.put_secret("a", b"wk2", b"v2", now, "bob") == 2
    assert await store.put_secret("b", b"wk3", b"v3", now, "ada") == 1
    versions = await store.secret_versions("a")
    assert [(v.version, v.wrapped_key, v.value, v.created_by) for v in versions] == [
        (1, b"wk1", b"v1", "ada"),
        (2, b"wk2", b"v2", "bob"),
    ]
    assert [(v.name, v.version) for v in await store.secret_versions()] == [
        ("a", 1), ("a", 2), ("b", 1),
    ]  # fmt: skip


async def test_concurrent_puts_never_share_a_version(store: Store) -> None:
    """Twenty writers at once: twenty distinct versions, 1..20."""
    now = time.time()
    got = await asyncio.gather(
        *(store.put_secret("x", b"k", str(i).encode(), now, "w") for i in range(20))
    )
    assert sorted(got) == list(range(1, 21))


async def test_rewrap_changes_only_what_it_is_told(store: Store) -> None:
    """rewrap_secrets applies the function to every data key and counts the ones changed;
    values are untouched."""
    now = time.time()
    await store.put_secret("a", b"old:1", b"value-1", now, "ada")
    await store.put_secret("a", b"new:2", b"value-2", now, "ada")

    def rewrap(wrapped: bytes) -> bytes | None:
        return b"new:" + wrapped[4:] if wrapped.startswith(b"old:") else None

    assert await store.rewrap_secrets(rewrap) == 1
    assert [(v.wrapped_key, v.value) for v in await store.secret_versions("a")] == [
        (b"new:1", b"value-1"),
        (b"new:2", b"value-2"),
    ]
    assert await store.rewrap_secrets(rewrap) == 0


async def test_delete_removes_every_version(store: Store) -> None:
    """delete_secret removes all versions of one name and no other."""
    now = time.time()
    await store.put_secret("a", b"k", b"v", now, "ada")
    await store.put_secret("a", b"k", b"v", now, "ada")
    await store.put_secret("b", b"k", b"v", now, "ada")
    assert await store.delete_secret("a") == 2
    assert await store.delete_secret("a") == 0
    assert [v.name for v in await store.secret_versions()] == ["b"]


async def test_templates_are_content_addressed_and_idempotent(store: Store) -> None:
    """A version is written once; the same id again writes nothing."""
    first = TemplateRecord("greet", "abc", "user: hi", time.time(), "ada")
    assert await store.put_template(first)
    assert not await store.put_template(TemplateRecord("greet", "abc", "other", 0.0, "bob"))
    await store.put_template(TemplateRecord("greet", "def", "user: hello", time.time(), "bob"))
    await store.put_template(TemplateRecord("bye", "123", "user: bye", time.time(), "bob"))
    got = await store.get_template("greet", "abc")
    assert (got.source, got.created_by, got.id) == ("user: hi", "ada", "greet@abc")
    assert [r.id for r in await store.list_templates("greet")] == ["greet@abc", "greet@def"]
    assert len(await store.list_templates()) == 3
    with pytest.raises(NotFoundError, match="greet@nope"):
        await store.get_template("greet", "nope")


async def test_routing_versions(store: Store) -> None:
    """No rules at first; each put is the next version and the latest is read."""
    assert await store.get_routing() is None
    assert await store.put_routing('{"tenants": {}}', time.time(), "ada") == 1
    assert await store.put_routing('{"keys": {}}', time.time(), "bob") == 2
    latest = await store.get_routing()
    assert latest is not None
    assert (latest.version, latest.document, latest.created_by) == (2, '{"keys": {}}', "bob")
