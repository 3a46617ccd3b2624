"""Small conventions of the command line: costs without float noise, paths from anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.cli.simulate import default_data
from sluice.models.prices import money


def test_money_drops_binary_noise() -> None:
    """Sums of small prices print as the amount a person would write."""
    assert money(0.00010900000000000002) == 0.000109
    assert money(0.1 + 0.2) == 0.3
    assert money(0.000002 * 3) == 0.000006
    assert money(1234.5678901234) == 1234.56789
    assert money(0.0) == 0.0


def test_simulator_data_is_found_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """simulate-model's default training data does not depend on the working directory."""
    monkeypatch.chdir(tmp_path)
    path = default_data(None)
    assert path.is_absolute()
    assert path.is_file()
    assert path.read_text().startswith("text,category")
    assert default_data(tmp_path / "app") == tmp_path / "app" / "data" / "banking77" / "train.csv"
