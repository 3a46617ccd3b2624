"""``sluice.testing`` exports exactly what users are told to import; changing it is a decision."""

from __future__ import annotations

import sluice.testing


def test_exported_names() -> None:
    """The exported names are pinned, and each one exists."""
    assert sorted(sluice.testing.__all__) == [
        "AsgiServer",
        "ManualClock",
        "Outcome",
        "Reply",
        "ScriptedModel",
        "TestApp",
        "free_port",
        "step_context",
        "wait_ready",
        "wait_until",
    ]
    for name in sluice.testing.__all__:
        assert getattr(sluice.testing, name) is not None


def test_test_app_is_not_collected_as_a_test_class() -> None:
    """Importing TestApp into a test module must not make pytest try to collect it."""
    assert sluice.testing.TestApp.__test__ is False
