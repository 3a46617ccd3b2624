"""What auditing a change costs, and how fast the trail verifies.

For each store (SQLite file; PostgreSQL when ``--postgres URL`` is given), ``--changes``
sequential changes are timed two ways in the same run, interleaved in rounds of 50:

- ``bare``: a role granted or revoked through the store alone (the baseline);
- ``audited``: the same change through the gate: authorized, applied, one audit entry
  appended (checkpoints signed every 100 entries with an Ed25519 key).

It reports the median time per change of each, their ratio, and the time to verify the
whole trail (entries per second, signatures checked).

    .venv/bin/python bench/audit.py [--changes 1000] [--postgres postgresql://...]

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sluice.governance import AuditLog, Change, Gate, Permission, create_principal, local_admin
from sluice.store.base import Store
from sluice.store.postgres import PostgresStore
from sluice.store.postgres_schema import drop_schema
from sluice.store.sqlite import SqliteStore

ROUND = 50


async def _measure(store: Store, changes: int) -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    gate = Gate(AuditLog(store, key, checkpoint_every=100))
    admin = local_admin()
    await create_principal(store, "bare", "user", ())
    await create_principal(store, "audited", "user", ())
    bare: list[float] = []
    audited: list[float] = []
    flips = {"bare": False, "audited": False}

    async def toggle(name: str) -> bool:
        flips[name] = not flips[name]
        if flips[name]:
            return await store.grant_role(name, "viewer")
        return await store.revoke_role(name, "viewer")

    async def apply() -> Change[bool]:
        return Change(await toggle("audited"), None, {"on": flips["audited"]})

    for _ in range(max(1, changes // ROUND)):
        for _ in range(ROUND):
            started = time.perf_counter()
            await toggle("bare")
            bare.append(time.perf_counter() - started)
        for _ in range(ROUND):
            started = time.perf_counter()
            await gate.change(admin, Permission.ROLES_WRITE, "role.toggle", "principal/audited",
                              apply)  # fmt: skip
            audited.append(time.perf_counter() - started)
    started = time.perf_counter()
    report = await AuditLog(store, verify_key=key.public_key()).verify()
    verify_s = time.perf_counter() - started
    if not (report.ok and report.signatures_checked):
        raise RuntimeError(f"the trail did not verify: {report}")
    bare_ms, audited_ms = statistics.median(bare) * 1e3, statistics.median(audited) * 1e3
    return {
        "changes": len(audited),
        "bare_median_ms": round(bare_ms, 3),
        "audited_median_ms": round(audited_ms, 3),
        "ratio": round(audited_ms / bare_ms, 2),
        "verify_entries": report.entries,
        "verify_checkpoints": report.checkpoints,
        "verify_entries_per_s": round(report.entries / verify_s),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--postgres", default=None, help="a postgresql:// URL to test too")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with SqliteStore(Path(tmp) / "audit.db") as store:
            out["sqlite"] = await _measure(store, args.changes)
    print("sqlite:", out["sqlite"])
    if args.postgres:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        sep = "&" if "?" in args.postgres else "?"
        try:
            async with PostgresStore(f"{args.postgres}{sep}schema={schema}", listen=False) as pg:
                out["postgres"] = await _measure(pg, args.changes)
        finally:
            conn = await asyncpg.connect(args.postgres)
            try:
                await drop_schema(conn, schema)
            finally:
                await conn.close()
        print("postgres:", out["postgres"])
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
