"""Every Store implementation runs the same contract suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sluice.store.base import Store
from sluice.store.sqlite import SqliteStore


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An open, empty store of each kind."""
    impl = SqliteStore(tmp_path / "contract.db")
    await impl.open()
    try:
        yield impl
    finally:
        await impl.aclose()
