"""A labelled data set from an environment's events: what a snapshot measures on seeded data.

A fixture of a labelled run carries each ticket's label in its input (``category`` beside
``text``); once seeded into an environment, :func:`write_labelled` writes those events as the
``text,category`` CSV that ``sluice eval`` and snapshots read (``sluice.models.splits``), so the
snapshot gate can be pointed at what the environment holds: the masked copy of real traffic.
Events of other workflows, dead ones, and inputs without both fields are skipped and counted.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import orjson

from sluice.app import build_store, encryption_codec
from sluice.envs.errors import FixtureError
from sluice.envs.lifecycle import environment_settings
from sluice.envs.records import EnvironmentRecord
from sluice.models.splits import LABEL_COLUMN, TEXT_COLUMN
from sluice.store.fixture_rows import iter_finished_events

#: The most rows one data set holds.
MAX_ROWS = 1_000_000


@dataclass(frozen=True, slots=True)
class LabelledReport:
    """Rows written and events skipped."""

    path: Path
    rows: int
    skipped: int


async def write_labelled(
    record: EnvironmentRecord,
    out: Path,
    *,
    workflow: str | None = None,
    text_field: str = "text",
    label_field: str = "category",
) -> LabelledReport:
    """Write the environment's done events as a ``text,category`` CSV, oldest first."""
    settings = environment_settings(record)
    store = build_store(settings, encryption_codec(settings))
    rows = skipped = 0
    await store.open()
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow([TEXT_COLUMN, LABEL_COLUMN])
            async for event in iter_finished_events(store, 0.0):
                if event.state.value != "done" or workflow not in (None, event.workflow):
                    skipped += 1
                    continue
                try:
                    data = orjson.loads(event.input)
                except orjson.JSONDecodeError:
                    data = None
                text = data.get(text_field) if isinstance(data, dict) else None
                label = data.get(label_field) if isinstance(data, dict) else None
                if not isinstance(text, str) or not isinstance(label, str) or not text:
                    skipped += 1
                    continue
                if rows >= MAX_ROWS:
                    raise FixtureError(f"{out}: more than {MAX_ROWS} rows")
                writer.writerow([text, label])
                rows += 1
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        await store.aclose()
    return LabelledReport(out, rows, skipped)
