"""Shared fixtures: app directories built from YAML text in a temporary folder."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

MakeApp = Callable[..., Path]


@pytest.fixture
def make_app(tmp_path: Path) -> MakeApp:
    """Write ``sluice.yaml``, workflow files and step modules into a fresh app directory."""

    def make(config: str, workflows: dict[str, str], modules: dict[str, str] | None = None) -> Path:
        app_dir = tmp_path / "app"
        (app_dir / "workflows").mkdir(parents=True, exist_ok=True)
        (app_dir / "sluice.yaml").write_text(textwrap.dedent(config))
        for name, text in workflows.items():
            (app_dir / "workflows" / name).write_text(textwrap.dedent(text))
        for name, text in (modules or {}).items():
            (app_dir / "workflows" / name).write_text(textwrap.dedent(text))
        return app_dir

    return make
