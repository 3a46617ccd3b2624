"""The release methods of both stores: a release is stored once and never updated; listing is
newest first, by workflow, bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.errors import NotFoundError
from sluice.releases import Release, build_release, current_releases, release_id
from sluice.store.base import ReleaseRecord, Store
from sluice.store.postgres_schema import MIGRATIONS as PG_MIGRATIONS
from sluice.store.sqlite_schema import MIGRATIONS as SQLITE_MIGRATIONS


def _record(workflow: str, version: int, created_at: float, note: str = "") -> ReleaseRecord:
    tiers = [{"model": "small", "threshold": 0.5 + version / 100}]
    manifest = {
        "format": 1,
        "workflow": {"name": workflow, "version": str(version)},
        "thresholds": {"classify": tiers},
    }
    return Release.of(manifest, created_at=created_at, created_by="ops", note=note).to_record()


async def test_a_release_is_stored_once_and_read_back_whole(store: Store) -> None:
    record = _record("triage", 1, 100.0, note="first")
    assert await store.put_release(record) is True
    assert await store.get_release(record.id) == record
    assert record.id == release_id(record.manifest)


async def test_putting_an_existing_id_changes_nothing(store: Store) -> None:
    """Idempotent create: the second put reports it was not new and the row keeps its note
    and time (a release is never updated)."""
    record = _record("triage", 1, 100.0, note="first")
    await store.put_release(record)
    again = ReleaseRecord(record.id, record.workflow, record.manifest, 200.0, "someone", "second")
    assert await store.put_release(again) is False
    assert await store.get_release(record.id) == record
    assert len(await store.list_releases()) == 1


async def test_list_is_newest_first_by_workflow_and_bounded(store: Store) -> None:
    triage = [_record("triage", v, 100.0 + v) for v in range(1, 5)]
    other = _record("greet", 1, 150.0)
    for record in [*triage, other]:
        await store.put_release(record)
    listed = await store.list_releases()
    assert [r.id for r in listed] == [other.id, *[r.id for r in reversed(triage)]]
    by_workflow = await store.list_releases(workflow="triage", limit=2)
    assert [r.id for r in by_workflow] == [triage[3].id, triage[2].id]
    assert await store.list_releases(workflow="nothing") == []


async def test_an_unknown_id_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no release 'r_0000000000000000'"):
        await store.get_release("r_0000000000000000")


def test_both_stores_have_the_same_number_of_migrations() -> None:
    """The releases table arrives in the same migration on both stores."""
    assert len(SQLITE_MIGRATIONS) == len(PG_MIGRATIONS)
    for migrations in (SQLITE_MIGRATIONS, PG_MIGRATIONS):
        (index,) = [i for i, m in enumerate(migrations) if "CREATE TABLE releases" in m]
        assert index == next(i for i, m in enumerate(SQLITE_MIGRATIONS) if "releases" in m)


async def test_the_current_release_is_the_stored_one_matching_the_files(
    store: Store, app: Path
) -> None:
    """None before any release; the stored id once created; None again after an edit that no
    release covers, and None for a workflow whose model artifact is missing."""
    assert await current_releases(store, app, ["triage"]) == {"triage": None}
    release = build_release(app, "triage", created_at=1.0)
    await store.put_release(release.to_record())
    assert await current_releases(store, app, ["triage"]) == {"triage": release.id}
    routing = app / "routing.yaml"
    routing.write_text(routing.read_text() + "# edited after the release\n")
    assert await current_releases(store, app, ["triage"]) == {"triage": None}
    routing.write_text(routing.read_text().replace("# edited after the release\n", ""))
    assert await current_releases(store, app, ["triage"]) == {"triage": release.id}
    for artifact in (app / ".sluice" / "models").iterdir():
        (artifact / "meta.json").unlink()
    assert await current_releases(store, app, ["triage"]) == {"triage": None}
