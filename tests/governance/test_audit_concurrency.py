"""100 concurrent changers through four stores on one database (four connection pools or
SQLite writers, as four processes would hold): one unbroken chain, every change in it once.
PostgreSQL serialises appenders on the chain head's row lock; SQLite on its write lock."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sluice.governance import AuditLog, Change, Gate, Permission, create_principal, local_admin
from sluice.ingress.admin_actions import principal_view
from sluice.store.base import Store
from sluice.store.postgres import PostgresStore
from sluice.store.sqlite import SqliteStore
from tests.store.conftest import drop_test_schema, new_schema, postgres_schema_url

CHANGERS = 100


async def _hammer(stores: Sequence[Store]) -> None:
    """Each of 100 changers creates a principal through a gate of its store, all released at
    once; then the trail holds entries 1..100, each change once, and verifies."""
    key = Ed25519PrivateKey.generate()
    gates = [Gate(AuditLog(s, key, checkpoint_every=10)) for s in stores]
    admin = local_admin()
    start = asyncio.Event()

    async def changer(i: int) -> None:
        store = stores[i % len(stores)]

        async def apply() -> Change[None]:
            made = await create_principal(store, f"p{i:03}", "service", ("viewer",))
            return Change(None, None, principal_view(await store.get_principal(made.name)))

        await start.wait()
        gate = gates[i % len(gates)]
        name = f"principal/p{i:03}"
        await gate.change(admin, Permission.PRINCIPALS_WRITE, "principal.create", name, apply)

    tasks = [asyncio.create_task(changer(i)) for i in range(CHANGERS)]
    await asyncio.sleep(0.1)
    start.set()
    await asyncio.gather(*tasks)

    entries = await stores[0].audit_entries(limit=10 * CHANGERS)
    assert [e.seq for e in entries] == list(range(1, CHANGERS + 1))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert Counter(e.resource for e in entries) == Counter(
        f"principal/p{i:03}" for i in range(CHANGERS)
    )
    assert await stores[0].audit_head() == (CHANGERS, entries[-1].hash)
    report = await AuditLog(stores[1], verify_key=key.public_key()).verify()
    assert (report.ok, report.entries) == (True, CHANGERS), report
    assert report.checkpoints >= CHANGERS // 10, report


async def test_postgres_changers_never_fork_the_chain() -> None:
    """Four pools of five connections on one schema."""
    schema = new_schema()
    stores = [PostgresStore(postgres_schema_url(schema), pool_size=5, listen=False)
              for _ in range(4)]  # fmt: skip
    try:
        for store in stores:
            await store.open()
        await _hammer(stores)
    finally:
        for store in stores:
            await store.aclose()
        await drop_test_schema(schema)


async def test_sqlite_changers_never_fork_the_chain(tmp_path: Path) -> None:
    """Four stores (four writer threads and connections) on one SQLite file."""
    stores = [SqliteStore(tmp_path / "audit.db") for _ in range(4)]
    try:
        for store in stores:
            await store.open()
        await _hammer(stores)
    finally:
        for store in stores:
            await store.aclose()
