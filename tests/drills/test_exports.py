"""``sluice.drills`` exports the drills ``sluice chaos`` runs and what they share."""

from __future__ import annotations

import sluice.drills
from sluice.cli.chaos import DRILLS


def test_exported_names() -> None:
    """The exported names are pinned, and each one exists."""
    assert sorted(sluice.drills.__all__) == [
        "DrillOptions",
        "DrillReport",
        "flood",
        "kill_cache_drill",
        "kill_worker_drill",
        "throttle_model",
    ]
    for name in sluice.drills.__all__:
        assert getattr(sluice.drills, name) is not None


def test_every_drill_of_the_cli_is_exported() -> None:
    """The CLI's table names the package's drills, one each."""
    exported = {getattr(sluice.drills, n) for n in sluice.drills.__all__}
    assert set(DRILLS.values()) <= exported
    assert len(DRILLS) == 4


def test_models_do_not_import_the_test_helpers() -> None:
    """Loading the models package pulls in neither the drills nor ``sluice.testing``."""
    import subprocess
    import sys

    code = (
        "import sys, sluice.models.registry, sluice.models.step, sluice.models.chat_model; "
        "print(sorted(m for m in sys.modules if m.startswith(('sluice.testing', 'sluice.drills'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
