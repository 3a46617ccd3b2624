"""The kill-worker drill, short: real gateway and workers, SIGKILLs, nothing lost or doubled."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli_runtime import sluice

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"


def test_kill_worker_drill_passes_and_reports() -> None:
    """Two kills during 400 events: every accepted event completes, none twice."""
    out = sluice("chaos", "kill-worker", "--app", str(HELLO), "--workflow", "greet",
                 "--events", "400", "--kills", "2", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["drill"] == "kill-worker"
    assert report["passed"] is True
    assert (report["accepted"], report["completed"]) == (400, 400)
    assert (report["lost"], report["duplicates"], report["dead"]) == (0, 0, 0)
    assert report["kills"] == 2
    assert "killed worker" in out.stderr


def test_unknown_drill_is_refused() -> None:
    """A drill name that does not exist exits 2 with the known names."""
    out = sluice("chaos", "flood-the-moon", "--app", str(HELLO))
    assert out.returncode == 2
    assert "kill-worker" in out.stderr
