"""Template files written into a temporary app directory."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

WriteTemplates = Callable[..., Path]


@pytest.fixture
def write_templates(tmp_path: Path) -> WriteTemplates:
    """Write ``prompts/NAME.yaml`` files (dedented) into a fresh app directory; return it."""

    def write(**files: str) -> Path:
        folder = tmp_path / "app" / "prompts"
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / f"{name}.yaml").write_text(textwrap.dedent(text))
        return tmp_path / "app"

    return write
