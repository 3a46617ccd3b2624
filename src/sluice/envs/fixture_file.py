"""The fixture file: JSON Lines, one row per line, written and read a line at a time.

Line 1 is the header, the last line the trailer; between them, events and quarantine entries:

    {"kind": "header", "format": "sluice-fixtures/1", "app": "triage", "masked": true, ...}
    {"kind": "event", "id": "...", "workflow": "triage", "version": "1", "tenant": "demo",
     "state": "done", "created_at": 1.0, "deadline": 2.0, "finished_at": 1.5, "error": null,
     "flag": null, "input": {...}, "result": {...},
     "steps": [{"step": 0, "name": "retrieve", "attempts": 1, "queued_at": 1.0,
                "started_at": 1.1, "finished_at": 1.2, "output": {...}}]}
    {"kind": "quarantine", "id": "...", "source": "helpdesk", "workflow": "triage",
     "tenant": "demo", "reason": "...", "problems": ["..."], "created_at": 1.0, "payload": ...}
    {"kind": "end", "events": 1, "quarantine": 1}

A payload that is JSON is written as its value; one that is not is written as a string under
``<name>_text`` (``payload_text``) instead. The trailer's counts let a reader tell a complete
file from a cut one. Reading checks every field and names the file, line and field of the
first problem.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from sluice.envs.errors import FixtureError
from sluice.envs.masking import FixtureMasker
from sluice.store.base import EventRecord, EventState, QuarantineItem, StepRecord

FORMAT = "sluice-fixtures/1"
#: The longest line a reader accepts: a fixture is bounded like the bodies it came from.
MAX_LINE_BYTES = 16 * 1024 * 1024


def _put(row: dict[str, Any], name: str, raw: bytes | None, masker: FixtureMasker) -> None:
    if raw is None:
        row[name] = None
        return
    try:
        row[name] = masker.value(orjson.loads(raw))
    except orjson.JSONDecodeError:
        row[f"{name}_text"] = masker.text(raw.decode("utf-8", "replace"))


def _optional_text(text: str | None, masker: FixtureMasker) -> str | None:
    return None if text is None else masker.text(text)


def event_row(event: EventRecord, masker: FixtureMasker) -> dict[str, Any]:
    """The fixture row of a finished event, its payloads and error masked."""
    row: dict[str, Any] = {
        "kind": "event", "id": event.id, "workflow": event.workflow, "version": event.version,
        "tenant": event.tenant, "state": event.state.value, "created_at": event.created_at,
        "deadline": event.deadline, "finished_at": event.finished_at,
        "error": _optional_text(event.error, masker), "flag": event.flag,
    }  # fmt: skip
    _put(row, "input", event.input, masker)
    _put(row, "result", event.result, masker)
    steps = []
    for step in event.steps:
        item: dict[str, Any] = {
            "step": step.step, "name": step.name, "attempts": step.attempts,
            "queued_at": step.queued_at, "started_at": step.started_at,
            "finished_at": step.finished_at,
        }  # fmt: skip
        _put(item, "output", step.output, masker)
        steps.append(item)
    row["steps"] = steps
    return row


def quarantine_row(item: QuarantineItem, masker: FixtureMasker) -> dict[str, Any]:
    """The fixture row of a quarantine entry, its raw payload, reason and problems masked."""
    row: dict[str, Any] = {
        "kind": "quarantine", "id": item.id, "source": item.source, "workflow": item.workflow,
        "tenant": item.tenant, "reason": masker.text(item.reason),
        "problems": [masker.text(p) for p in item.problems], "created_at": item.created_at,
    }  # fmt: skip
    _put(row, "payload", item.payload, masker)
    return row


class FixtureWriter:
    """Writes a fixture file to ``path`` through a temporary file renamed at :meth:`close`, so
    a reader never sees half a file; :meth:`abort` removes the temporary file."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._out: IO[bytes] = self._tmp.open("wb")
        except OSError as exc:
            raise FixtureError(f"{path}: cannot write: {exc.strerror or exc}") from exc
        self.events = 0
        self.quarantine = 0
        self._line({"kind": "header", "format": FORMAT, **header})

    def _line(self, row: dict[str, Any]) -> None:
        self._out.write(orjson.dumps(row))
        self._out.write(b"\n")

    def event(self, row: dict[str, Any]) -> None:
        """Append one event row."""
        self._line(row)
        self.events += 1

    def quarantined(self, row: dict[str, Any]) -> None:
        """Append one quarantine row."""
        self._line(row)
        self.quarantine += 1

    def close(self) -> None:
        """Write the trailer, flush to disk and put the file in place."""
        self._line({"kind": "end", "events": self.events, "quarantine": self.quarantine})
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        self._tmp.replace(self.path)

    def abort(self) -> None:
        """Drop what was written."""
        self._out.close()
        self._tmp.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class FixtureHeader:
    """What the first line of a fixture file says about it."""

    app: str
    masked: bool
    raw: dict[str, Any]


class _Row:
    """Typed access to one line's fields, each problem naming the file, line and field."""

    def __init__(self, where: str, row: dict[str, Any]) -> None:
        self.where = where
        self.row = row

    def fail(self, field: str, what: str) -> FixtureError:
        return FixtureError(f"{self.where}: {field}: {what}")

    def text(self, field: str, optional: bool = False) -> Any:
        value = self.row.get(field)
        if value is None and optional:
            return None
        if not isinstance(value, str) or (not optional and not value):
            raise self.fail(field, f"expected a non-empty string, got {type(value).__name__}")
        return value

    def number(self, field: str, optional: bool = False) -> Any:
        value = self.row.get(field)
        if value is None and optional:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self.fail(field, f"expected a number, got {type(value).__name__}")
        return float(value)

    def integer(self, field: str) -> int:
        value = self.row.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(field, f"expected a non-negative integer, got {value!r}")
        return value

    def payload(self, name: str, optional: bool = False) -> bytes | None:
        if f"{name}_text" in self.row:
            text = self.row[f"{name}_text"]
            if not isinstance(text, str):
                raise self.fail(f"{name}_text", "expected a string")
            return text.encode("utf-8")
        if name not in self.row:
            raise self.fail(name, "missing")
        value = self.row[name]
        if value is None:
            if optional:
                return None
            raise self.fail(name, "must not be null")
        return orjson.dumps(value)


def _event(row: _Row) -> EventRecord:
    state = row.text("state")
    if state not in ("done", "dead"):
        raise row.fail("state", f"expected 'done' or 'dead', got {state!r}")
    raw_steps = row.row.get("steps", [])
    if not isinstance(raw_steps, list):
        raise row.fail("steps", "expected a list")
    steps = []
    for index, raw in enumerate(raw_steps):
        if not isinstance(raw, dict):
            raise row.fail(f"steps[{index}]", "expected an object")
        step = _Row(f"{row.where}: steps[{index}]", raw)
        steps.append(
            StepRecord(
                step.integer("step"),
                step.text("name"),
                step.integer("attempts"),
                step.number("queued_at"),
                step.number("started_at"),
                step.number("finished_at"),
                step.payload("output") or b"",
            )
        )
    return EventRecord(
        id=row.text("id"), workflow=row.text("workflow"), version=row.text("version"),
        tenant=row.text("tenant"), state=EventState(state), created_at=row.number("created_at"),
        deadline=row.number("deadline"), finished_at=row.number("finished_at", optional=True),
        error=row.text("error", optional=True), input=row.payload("input") or b"",
        result=row.payload("result", optional=True), steps=tuple(steps),
        flag=row.text("flag", optional=True),
    )  # fmt: skip


def _quarantined(row: _Row) -> QuarantineItem:
    problems = row.row.get("problems", [])
    if not isinstance(problems, list) or not all(isinstance(p, str) for p in problems):
        raise row.fail("problems", "expected a list of strings")
    return QuarantineItem(
        row.text("id"), row.text("source"), row.text("workflow"), row.text("tenant"),
        row.text("reason", optional=True) or "", tuple(problems),
        row.payload("payload") or b"", row.number("created_at"),
    )  # fmt: skip


def read_fixtures(path: Path) -> tuple[FixtureHeader, Iterator[EventRecord | QuarantineItem]]:
    """Open a fixture file: its header now, then its rows one at a time.

    The iterator raises :class:`FixtureError` on the first bad line, and at the end when the
    trailer is missing or its counts disagree with the rows read (a cut or edited file).
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise FixtureError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    first = handle.readline(MAX_LINE_BYTES + 1)
    header_row = _parse(path, 1, first)
    if header_row.get("kind") != "header" or header_row.get("format") != FORMAT:
        handle.close()
        raise FixtureError(f"{path}:1: not a fixture file (expected a {FORMAT} header line)")
    header = FixtureHeader(str(header_row.get("app", "")), header_row.get("masked") is True,
                           header_row)  # fmt: skip

    def rows() -> Iterator[EventRecord | QuarantineItem]:
        counts = {"event": 0, "quarantine": 0}
        with handle:
            number = 1
            for line in iter(lambda: handle.readline(MAX_LINE_BYTES + 1), b""):
                number += 1
                raw = _parse(path, number, line)
                kind = raw.get("kind")
                row = _Row(f"{path}:{number}", raw)
                if kind == "end":
                    if (raw.get("events"), raw.get("quarantine")) != (
                        counts["event"],
                        counts["quarantine"],
                    ):
                        raise row.fail("kind", f"the trailer counts {raw.get('events')} events"
                                       f" and {raw.get('quarantine')} quarantine entries, the"
                                       f" file holds {counts['event']} and"
                                       f" {counts['quarantine']}")  # fmt: skip
                    if handle.readline(1):
                        raise FixtureError(f"{path}:{number + 1}: lines after the trailer")
                    return
                if kind == "event":
                    counts["event"] += 1
                    yield _event(row)
                elif kind == "quarantine":
                    counts["quarantine"] += 1
                    yield _quarantined(row)
                else:
                    raise row.fail("kind", f"expected event, quarantine or end, got {kind!r}")
        raise FixtureError(f"{path}: no trailer line: the file was cut short")

    return header, rows()


def _parse(path: Path, number: int, line: bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE_BYTES:
        raise FixtureError(f"{path}:{number}: line longer than {MAX_LINE_BYTES} bytes")
    if not line.strip():
        raise FixtureError(f"{path}:{number}: empty line")
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise FixtureError(f"{path}:{number}: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise FixtureError(f"{path}:{number}: expected a JSON object")
    return value
