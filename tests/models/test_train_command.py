"""``sluice train`` and ``sluice split`` run end to end through the real command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from sluice.cli.main import build_app
from sluice.models.splits import read_examples

CONFIG = """\
models:
  small:
    kind: tfidf
    train: data/train.csv
    price_per_call: 0.00001
  remote:
    kind: openai
    base_url: http://localhost:9/v1
"""


def test_train_then_reuse(app_dir: Path, tmp_path: Path) -> None:
    """The first run trains and prints progress; the second reuses the artifact."""
    app = tmp_path / "app"
    shutil.copytree(app_dir / "data", app / "data")
    (app / "sluice.yaml").write_text(CONFIG)
    runner = CliRunner()
    first = runner.invoke(build_app(), ["train", str(app)])
    assert first.exit_code == 0, first.output
    assert "calibration fold" in first.output
    (artifact,) = (app / ".sluice" / "models").glob("small-*")
    assert f"small\t{artifact.name.removeprefix('small-')}" in first.output
    second = runner.invoke(build_app(), ["train", str(app)])
    assert second.exit_code == 0
    assert "reusing" in second.output
    assert "calibration fold" not in second.output


def test_invalid_models_section(tmp_path: Path) -> None:
    """A bad entry exits with status 2 and the offending path."""
    (tmp_path / "sluice.yaml").write_text("models:\n  small: {kind: tfidf, c: -1}\n")
    result = CliRunner().invoke(build_app(), ["train", str(tmp_path)])
    assert result.exit_code == 2
    assert "models.small.c: must be a positive number" in result.output


def test_split_command(tmp_path: Path) -> None:
    """sluice split writes three stratified CSVs."""
    source = tmp_path / "all.csv"
    source.write_text("text,category\n" + "".join(f"t{i},l{i % 3}\n" for i in range(60)))
    result = CliRunner().invoke(build_app(), ["split", str(source), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    sizes = {
        name: len(read_examples(tmp_path / "out" / f"{name}.csv"))
        for name in ("train", "validation", "replay")
    }
    assert sizes == {"train": 45, "validation": 9, "replay": 6}


def test_importing_sluice_loads_no_model_libraries() -> None:
    """The core import path (package, models, registry, cascade, CLI) pulls in no heavy library."""
    code = (
        "import sys, sluice, sluice.models, sluice.models.registry, sluice.models.cascade, "
        "sluice.models.tuning, sluice.models.local, sluice.models.metrics, sluice.cli.main\n"
        "sluice.cli.main.build_app()\n"
        "heavy = {'numpy', 'scipy', 'sklearn', 'torch', 'wordllama', 'sentence_transformers'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
