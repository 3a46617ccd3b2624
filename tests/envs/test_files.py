"""Bad environment files and bad fixture files: errors that name the file, line and field."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import orjson
import pytest

from sluice.config import parse_settings
from sluice.envs import (
    EnvironmentSpecError,
    EnvironmentStateError,
    FixtureError,
    environment_up,
    load_environments,
    read_fixtures,
)
from sluice.envs.fixture_file import FORMAT
from sluice.envs.fixtures import pseudonym_key
from sluice.store.base import EventRecord, QuarantineItem


def test_environment_file_problems_are_all_named(tmp_path: Path) -> None:
    """Every problem at once, each with its path; ${VAR} must be set."""
    (tmp_path / "environments.yaml").write_text(
        """
environments:
  ok: {store: sqlite}
  Bad-Name: {store: sqlite}
  pg:
    store: mysql://x
    kv: {url: "redis://h:6379/0?prefix=x:", database: 99}
    fixturs: []
  unset:
    store: ${NO_SUCH_VARIABLE_HERE}
"""
    )
    with pytest.raises(EnvironmentSpecError) as caught:
        load_environments(tmp_path, {})
    text = str(caught.value)
    assert "environments.Bad-Name: names are" in text
    assert "environments.pg.store: must be 'sqlite' or a postgresql:// URL" in text
    assert "environments.pg.kv.database: must be a Redis database number 0-15" in text
    assert "environments.pg.kv.url: name the server only" in text
    assert "environments.pg.fixturs: unknown setting (did you mean fixtures?)" in text
    assert "environments.unset.store: ${NO_SUCH_VARIABLE_HERE} is not set" in text


def test_environment_file_expands_variables(tmp_path: Path) -> None:
    """URLs may name the servers through the environment (CI sets them)."""
    (tmp_path / "environments.yaml").write_text(
        "environments:\n  ci: {store: '${PG}', kv: '${REDIS}', release: 7}\n"
    )
    spec = load_environments(tmp_path, {"PG": "postgresql://h/db", "REDIS": "redis://h:1/0"})["ci"]
    assert (spec.store, spec.isolate, spec.kv, spec.release) == (
        "postgresql://h/db", "schema", "redis://h:1/0", "7"
    )  # fmt: skip


def _read_all(path: Path) -> list[object]:
    _, rows = read_fixtures(path)
    return list(rows)


def _write(path: Path, rows: list[object]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


HEADER = {"kind": "header", "format": FORMAT, "app": "a", "masked": True}
EVENT = {"kind": "event", "id": "e1", "workflow": "w", "version": "1", "tenant": "t",
         "state": "done", "created_at": 1.0, "deadline": 2.0, "finished_at": 1.5, "error": None,
         "flag": None, "input": {"a": 1}, "result": None, "steps": [
             {"step": 0, "name": "s", "attempts": 1, "queued_at": 1.0, "started_at": 1.1,
              "finished_at": 1.2, "output_text": "not json"}]}  # fmt: skip
QUARANTINE = {"kind": "quarantine", "id": "q1", "source": "s", "workflow": "w",
              "tenant": "t", "reason": "r", "problems": ["p"], "created_at": 1.0,
              "payload_text": "{oops"}  # fmt: skip


def test_fixture_file_round_trip(tmp_path: Path) -> None:
    """A well-formed file reads back: JSON payloads as JSON bytes, text payloads as text."""
    end = {"kind": "end", "events": 1, "quarantine": 1}
    path = _write(tmp_path / "f.jsonl", [HEADER, EVENT, QUARANTINE, end])
    header, rows = read_fixtures(path)
    event, item = list(rows)
    assert header.masked
    assert isinstance(event, EventRecord)
    assert event.input == b'{"a":1}'
    assert event.steps[0].output == b"not json"
    assert isinstance(item, QuarantineItem)
    assert item.payload == b"{oops"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"kind": "nope"}], ":1: not a fixture file"),
        ([HEADER, {**EVENT, "state": "accepted"}], ":2: state: expected 'done' or 'dead'"),
        ([HEADER, {**EVENT, "created_at": "yesterday"}], ":2: created_at: expected a number"),
        ([HEADER, {**EVENT, "steps": [{"step": -1}]}], ":2: steps[0]: step: expected a non-neg"),
        ([HEADER, EVENT], "no trailer line: the file was cut short"),
        ([HEADER, EVENT, {"kind": "end", "events": 2, "quarantine": 0}],
         ":3: kind: the trailer counts 2 events"),
        ([HEADER, {**QUARANTINE, "problems": [1]}], ":2: problems: expected a list of strings"),
    ],
)  # fmt: skip
def test_bad_fixture_files_name_the_line_and_field(
    tmp_path: Path, rows: list[object], message: str
) -> None:
    """Each problem names the file, the line and the field."""
    path = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(FixtureError) as caught:
        _read_all(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_an_undeclared_environment_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    """``env up`` of a name the file does not declare names the ones it does."""
    (tmp_path / "environments.yaml").write_text("environments:\n  laptop: {store: sqlite}\n")
    with pytest.raises(
        EnvironmentStateError, match=r"no environment 'ci' declared \(declared: laptop\)"
    ):
        asyncio.run(environment_up(tmp_path, "ci", {}))
    assert not (tmp_path / ".sluice").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [("zz-not-a-key", "expected hex or base64"), ("abcd", "at least 32 bytes")],
)
def test_a_bad_pseudonym_key_is_refused(tmp_path: Path, value: str, message: str) -> None:
    """SLUICE_FIXTURES_KEY must be hex or base64 of at least 32 bytes."""
    settings = parse_settings({}, tmp_path, {"SLUICE_FIXTURES_KEY": value})
    with pytest.raises(FixtureError, match=message):
        pseudonym_key(settings)


def test_a_pseudonym_key_in_hex_or_base64(tmp_path: Path) -> None:
    """The same 32 bytes in hex and in base64 are the same key."""
    raw = bytes(range(32))
    keys = [pseudonym_key(parse_settings({}, tmp_path, {"SLUICE_FIXTURES_KEY": text}))
            for text in (raw.hex(), base64.b64encode(raw).decode())]  # fmt: skip
    assert keys == [(raw, True), (raw, True)]
    assert pseudonym_key(parse_settings({}, tmp_path, {}))[1] is False
