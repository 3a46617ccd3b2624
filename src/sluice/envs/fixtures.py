"""Exporting real events as fixtures, and seeding an environment with them.

:func:`export_fixtures` reads an app's finished events and quarantine entries since a time from
its store, a page at a time (decrypted by the store's codec), masks each row
(:class:`~sluice.envs.masking.FixtureMasker`) and streams it to a JSON Lines file
(:mod:`sluice.envs.fixture_file`); at most ``limit`` events and ``limit`` quarantine entries.
:func:`seed_environment` writes such a file into an environment's store, sealed with that
store's codec, a bounded batch per transaction.

The pseudonym key comes from ``SLUICE_FIXTURES_KEY`` (base64 or hex, at least 32 bytes): with
it, the same value gets the same fake in every export. Without it a random key is drawn for the
one export (fakes are stable within the file, not across files) and the caller is told.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from sluice.app import build_store, encryption_codec
from sluice.config import AppSettings
from sluice.envs import records
from sluice.envs.errors import FixtureError
from sluice.envs.fixture_file import FixtureWriter, event_row, quarantine_row, read_fixtures
from sluice.envs.lifecycle import environment_settings
from sluice.envs.masking import FixtureMasker, configured_secrets
from sluice.envs.pseudonyms import KEY_BYTES, Pseudonymizer
from sluice.envs.records import EnvironmentRecord
from sluice.store.base import EventRecord, QuarantineItem
from sluice.store.fixture_rows import (
    SeedCounts,
    count_finished_events,
    count_quarantine,
    iter_finished_events,
    iter_quarantine,
    write_rows,
)

KEY_ENV = "SLUICE_FIXTURES_KEY"
#: The most rows one export writes of each kind unless told otherwise.
DEFAULT_LIMIT = 100_000
#: Rows per transaction when seeding.
SEED_BATCH = 200
Progress = Callable[[int, int], None]


def pseudonym_key(settings: AppSettings) -> tuple[bytes, bool]:
    """The key from ``SLUICE_FIXTURES_KEY`` and True, or a fresh random one and False."""
    text = settings.env.get(KEY_ENV, "").strip()
    if not text:
        return secrets.token_bytes(KEY_BYTES), False
    try:
        key = bytes.fromhex(text)
    except ValueError:
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise FixtureError(f"{KEY_ENV}: expected hex or base64") from None
    if len(key) < KEY_BYTES:
        raise FixtureError(f"{KEY_ENV}: the key must be at least {KEY_BYTES} bytes")
    return key, True


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What an export wrote."""

    path: Path
    events: int
    quarantine: int
    replaced: int
    removed: int
    stable_key: bool
    truncated: bool


async def export_fixtures(
    settings: AppSettings,
    out: Path,
    since: float,
    *,
    mask: bool,
    limit: int = DEFAULT_LIMIT,
    progress: Progress | None = None,
) -> ExportReport:
    """Stream the app's finished events and quarantine entries since ``since`` to ``out``."""
    if limit < 1:
        raise FixtureError(f"--limit must be at least 1, got {limit}")
    key, stable = pseudonym_key(settings)
    masker = FixtureMasker(Pseudonymizer(key) if mask else None, configured_secrets(settings))
    store = build_store(settings, encryption_codec(settings))
    await store.open()
    writer: FixtureWriter | None = None
    try:
        events_total = min(limit, await count_finished_events(store, since))
        quarantine_total = min(limit, await count_quarantine(store, since))
        total = events_total + quarantine_total
        header = {
            "app": settings.app_dir.name, "masked": mask,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "since": datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds"),
            "stable_pseudonyms": mask and stable,
        }  # fmt: skip
        writer = FixtureWriter(out, header)
        truncated = False
        async for event in iter_finished_events(store, since):
            if writer.events >= limit:
                truncated = True
                break
            writer.event(event_row(event, masker))
            if progress is not None:
                progress(writer.events, total)
        async for item in iter_quarantine(store, since):
            if writer.quarantine >= limit:
                truncated = True
                break
            writer.quarantined(quarantine_row(item, masker))
            if progress is not None:
                progress(writer.events + writer.quarantine, total)
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        await store.aclose()
    return ExportReport(out, writer.events, writer.quarantine, masker.replaced, masker.removed,
                        stable, truncated)  # fmt: skip


async def seed_environment(
    app_dir: Path, record: EnvironmentRecord, files: list[Path], progress: Progress | None = None
) -> SeedCounts:
    """Load fixture files into the environment's store; ids it holds already are skipped."""
    settings = environment_settings(record)
    store = build_store(settings, encryption_codec(settings))
    total = SeedCounts()
    # Every file is read through once before anything is written: a bad line, or a file cut
    # short, is reported with nothing seeded rather than after part of it went in.
    for path in files:
        _, rows = read_fixtures(path)
        for _ in rows:
            pass
    opened = [(path, *read_fixtures(path)) for path in files]
    await store.open()
    try:
        done = 0
        for path, _header, rows in opened:
            file_counts = SeedCounts()
            events: list[EventRecord] = []
            items: list[QuarantineItem] = []
            for row in rows:
                if isinstance(row, EventRecord):
                    events.append(row)
                else:
                    items.append(row)
                if len(events) + len(items) >= SEED_BATCH:
                    file_counts = _add(file_counts, await write_rows(store, events, items))
                    done += len(events) + len(items)
                    events, items = [], []
                    if progress is not None:
                        progress(done, 0)
            if events or items:
                file_counts = _add(file_counts, await write_rows(store, events, items))
                done += len(events) + len(items)
                if progress is not None:
                    progress(done, 0)
            total = _add(total, file_counts)
            current = records.load(app_dir, record.name) or record
            entry = {
                "file": str(path),
                "at": time.time(),
                "events": file_counts.events,
                "quarantine": file_counts.quarantine,
                "skipped": file_counts.skipped,
            }
            records.save(app_dir, replace(current, seeded=(*current.seeded, entry)))
    finally:
        await store.aclose()
    return total


def _add(a: SeedCounts, b: SeedCounts) -> SeedCounts:
    return SeedCounts(a.events + b.events, a.steps + b.steps, a.quarantine + b.quarantine,
                      a.skipped + b.skipped)  # fmt: skip
