"""100 concurrent changers on PostgreSQL, through four stores (four connection pools, as four
processes would hold): one unbroken chain, every change in it once."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sluice.governance import AuditLog, Change, Gate, Permission, create_principal, local_admin
from sluice.ingress.admin_actions import principal_view
from sluice.store.postgres import PostgresStore
from tests.store.conftest import drop_test_schema, new_schema, postgres_schema_url

CHANGERS = 100


async def test_concurrent_changers_never_fork_the_chain() -> None:
    """Each of 100 changers creates a principal through a gate of its pool's store; the
    trail holds entries 1..100, each change once, and verifies with its checkpoints."""
    schema = new_schema()
    key = Ed25519PrivateKey.generate()
    stores = [PostgresStore(postgres_schema_url(schema), pool_size=5, listen=False)
              for _ in range(4)]  # fmt: skip
    try:
        for store in stores:
            await store.open()
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
    finally:
        for store in stores:
            await store.aclose()
        await drop_test_schema(schema)
