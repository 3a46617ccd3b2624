"""Governance tests run on both stores: the ``store`` fixture of ``tests/store`` (an open,
empty SQLite file or PostgreSQL schema of the test's own; a missing server fails)."""

from __future__ import annotations

from tests.store.conftest import store

__all__ = ["store"]
