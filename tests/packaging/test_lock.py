"""The lock file: every pin carries the digests ``pip install --require-hashes`` checks, and
the constraints file holds the same pins."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_ENTRY = re.compile(r"^([A-Za-z0-9_.\-]+==\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})+)", re.M)


def _pins(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_every_pin_has_digests_and_the_constraints_match() -> None:
    lock = (ROOT / "requirements/lock.txt").read_text()
    entries = _ENTRY.findall(lock)
    pins = [line.split(" ")[0] for line in lock.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    assert [pin for pin, _ in entries] == pins, "a pin without --hash lines"
    assert all(hashes.count("--hash=") >= 1 for _, hashes in entries)
    constraints = _pins((ROOT / "requirements/constraints.txt").read_text())
    assert constraints == pins, "run requirements/add_hashes.py after changing the lock"
    # The install installs with the digests checked.
    assert "--require-hashes -r requirements/lock.txt" in (ROOT / "Makefile").read_text()
