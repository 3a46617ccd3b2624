"""The example apps as ``sluice init`` scaffolds them (in process, from the checkout)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sluice.cli.main import build_app
from sluice.config import load_settings
from sluice.errors import ConfigError
from sluice.examples import EXAMPLES, example_dir, is_packaged, scaffold, working_copy

runner = CliRunner()


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_scaffolds_into_a_loadable_app(tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    files = scaffold(name, target)
    assert (target / "sluice.yaml") in files
    settings = load_settings(target)
    assert settings.app_dir.resolve() == target.resolve()
    # What running an app builds is never copied.
    assert not any(".sluice" in p.parts or p.suffix == ".db" for p in files)


def test_init_refuses_a_non_empty_directory_and_names_it(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = runner.invoke(build_app(), ["init", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not empty" in result.output
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "sluice.yaml").exists()


def test_init_names_the_templates_on_an_unknown_one(tmp_path: Path) -> None:
    result = runner.invoke(build_app(), ["init", str(tmp_path / "x"), "--template", "helo"])
    assert result.exit_code == 2
    assert "unknown example 'helo'" in result.output
    assert "hello, triage, gateway" in result.output


def test_init_json_lists_files_and_next_steps(tmp_path: Path) -> None:
    target = tmp_path / "app"
    result = runner.invoke(build_app(), ["init", str(target), "-t", "triage", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["template"] == "triage"
    assert "sluice.yaml" in doc["files"]
    assert "workflows/triage.yaml" in doc["files"]
    assert any("sluice.demo --app" in step for step in doc["next"])


def test_a_checkout_reads_the_examples_in_place() -> None:
    path = example_dir("triage")
    assert not is_packaged(path)
    assert working_copy("triage") == path
    with pytest.raises(ConfigError, match="unknown example"):
        example_dir("nope")
