"""``sluice.drills`` holds every drill ``sluice chaos`` runs (its names are pinned in
tests/test_exports.py; the layers contract keeps models from importing it)."""

from __future__ import annotations

import sluice.drills
from sluice.cli.chaos import DRILLS


def test_every_drill_of_the_cli_is_exported() -> None:
    """The CLI's table names the package's drills, one each."""
    exported = {getattr(sluice.drills, n) for n in sluice.drills.__all__}
    assert set(DRILLS.values()) <= exported
    assert len(DRILLS) == 4
