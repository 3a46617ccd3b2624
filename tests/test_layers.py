"""The import-linter contracts in ``.importlinter`` hold on the tree and catch an upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"


def lint_imports(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the contracts against the ``sluice`` package under ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run(
        [sys.executable, "-c", command, "--no-cache", "--no-logo", str(CONFIG)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_tree_keeps_the_contracts(tmp_path: Path) -> None:
    """Every contract is kept on the real source tree."""
    result = lint_imports(ROOT / "src", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    """A low layer importing a higher one (telemetry importing a step) fails, naming it."""
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "sluice", src / "sluice", ignore=shutil.ignore_patterns("__pycache__")
    )
    metrics = src / "sluice" / "telemetry" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\nfrom sluice.steps.deliver import deliver\n")

    result = lint_imports(src, tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Layers point down BROKEN" in result.stdout
    assert "sluice.telemetry.metrics -> sluice.steps.deliver" in result.stdout


def test_a_cycle_breaks_the_acyclic_contract(tmp_path: Path) -> None:
    """Two sibling modules importing each other fail the no-cycles contract."""
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "sluice", src / "sluice", ignore=shutil.ignore_patterns("__pycache__")
    )
    # Within one package, so the layers stay kept and only the cycle is reported.
    sink = src / "sluice" / "telemetry" / "sink.py"
    sink.write_text(sink.read_text() + "\nfrom sluice.telemetry import tracing\n")

    result = lint_imports(src, tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Layers point down KEPT" in result.stdout
    assert "No import cycles between sibling modules or packages BROKEN" in result.stdout
    assert ".sink -> .tracing" in result.stdout or ".tracing -> .sink" in result.stdout
