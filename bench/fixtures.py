"""What masking costs a fixture export, and how fast an environment is seeded.

Writes ``--events`` finished events (two step results each; the input a ticket with an e-mail
address, a phone number and a card number in it, and an API key field) into a SQLite store,
then exports them (``sluice.envs.export_fixtures``) in interleaved rounds, best of
``--rounds``:

- ``plain``: no pseudonyms, secrets still removed (the baseline: reading, decoding, writing);
- ``masked``: ``--mask``, every PII value replaced by its keyed pseudonym.

Then seeds the masked file into a fresh SQLite store (``sluice env seed``'s path).

    PYTHONPATH=src .venv/bin/python bench/fixtures.py [--events 5000] [--rounds 3]

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from sluice.config import parse_settings
from sluice.envs.fixtures import export_fixtures, seed_environment
from sluice.envs.records import EnvironmentRecord
from sluice.store.base import EventRecord, EventState, StepRecord
from sluice.store.fixture_rows import write_rows
from sluice.store.sqlite import SqliteStore


def _event(index: int, now: float) -> EventRecord:
    data = {
        "text": f"Hi, I am customer {index}. Mail me at user{index}@mail.example.org or call "
        f"+1 415 555 {index % 10000:04d}; my card 4111 1111 1111 1111 was charged twice.",
        "api_key": f"sk_live_{index:032d}",
        "subject": "double charge",
    }
    raw = orjson.dumps(data)
    steps = (
        StepRecord(0, "classify", 1, now, now, now, orjson.dumps({**data, "intent": "refund"})),
        StepRecord(1, "reply", 1, now, now, now, orjson.dumps({"reply": "We are on it."})),
    )
    return EventRecord(
        id=f"e{index:08d}", workflow="triage", version="1", tenant="bench",
        state=EventState.DONE, created_at=now + index * 1e-3, deadline=now + 60,
        finished_at=now + 1, error=None, input=raw, result=steps[1].output, steps=steps,
    )  # fmt: skip


async def _fill(path: Path, events: int) -> None:
    now = time.time() - 600
    async with SqliteStore(path, synchronous="normal") as store:
        for start in range(0, events, 500):
            batch = [_event(i, now) for i in range(start, min(events, start + 500))]
            await write_rows(store, batch, [])


async def main(events: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="sluice-bench-fixtures-") as tmp:
        root = Path(tmp)
        (root / "workflows").mkdir()
        await _fill(root / "source.db", events)
        settings = parse_settings(
            {"store": f"sqlite:///{root / 'source.db'}"}, root,
            {"SLUICE_FIXTURES_KEY": "ab" * 32},
        )  # fmt: skip
        times: dict[str, list[float]] = {"plain": [], "masked": []}
        for _ in range(rounds):
            for kind in ("plain", "masked"):
                started = time.perf_counter()
                report = await export_fixtures(
                    settings, root / f"{kind}.jsonl", 0.0, mask=kind == "masked"
                )
                times[kind].append(time.perf_counter() - started)
                assert report.events == events
        record = EnvironmentRecord(
            "bench", str(root), time.time(), "sqlite", "file",
            store_url=f"sqlite:///{root / 'seeded.db'}",
        )  # fmt: skip
        started = time.perf_counter()
        counts = await seed_environment(root, record, [root / "masked.jsonl"])
        seed_s = time.perf_counter() - started
        assert counts.events == events
        size = (root / "masked.jsonl").stat().st_size
    plain, masked = min(times["plain"]), min(times["masked"])
    return {
        "events": events,
        "plain_export_s": round(plain, 3),
        "masked_export_s": round(masked, 3),
        "masked_events_per_s": round(events / masked, 1),
        "masked_over_plain": round(masked / plain, 2),
        "plain_median_s": round(statistics.median(times["plain"]), 3),
        "masked_median_s": round(statistics.median(times["masked"]), 3),
        "seed_s": round(seed_s, 3),
        "seed_events_per_s": round(events / seed_s, 1),
        "file_bytes_per_event": round(size / events, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.events, args.rounds))))
