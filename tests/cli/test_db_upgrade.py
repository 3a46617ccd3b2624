"""``sluice db upgrade`` says what it did: created, upgraded, or already up to date."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from sluice.cli.db import upgrade_summary
from sluice.cli.main import build_app
from sluice.store.sqlite_schema import MIGRATIONS
from tests.store.conftest import drop_test_schema, new_schema, postgres_schema_url


def _upgrade(app: Path) -> str:
    result = CliRunner().invoke(build_app(), ["db", "upgrade", "--app", str(app)])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_sqlite_fresh_then_current(tmp_path: Path) -> None:
    """On a new SQLite file the schema is created; a second run finds it up to date."""
    latest = len(MIGRATIONS)
    assert _upgrade(tmp_path) == (
        f"created the store schema (version {latest}): sqlite:///.sluice/sluice.db"
    )
    assert _upgrade(tmp_path) == (
        f"store schema is up to date (version {latest}): sqlite:///.sluice/sluice.db"
    )


def test_postgres_fresh_then_current(tmp_path: Path) -> None:
    """The same on PostgreSQL, in a schema of its own."""
    schema = new_schema()
    (tmp_path / "sluice.yaml").write_text(f"store: {postgres_schema_url(schema)}\n")
    try:
        first, second = _upgrade(tmp_path), _upgrade(tmp_path)
    finally:
        asyncio.run(drop_test_schema(schema))
    assert first.startswith("created the store schema (version ")
    assert second.startswith("store schema is up to date (version ")
    assert first.endswith(f"schema={schema}")


def test_an_upgrade_names_both_versions() -> None:
    """Moving an existing schema forward reports from which version to which."""
    assert upgrade_summary(4, 6, "db") == "upgraded the store schema from version 4 to 6: db"
