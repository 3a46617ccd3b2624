"""Which stored release an app is running: resolved once, when the app starts.

Because a release id is the digest of its manifest, "the newest release of the workflow whose
manifest matches the loaded files" is one lookup: build the manifest of the files as they are,
digest it, and ask the store for that id. A workflow whose files match no stored release (or
cannot be released, e.g. a model artifact is missing) runs under no release.

The result is a small mapping (workflow name to release id or None) computed before the first
event is accepted, so tagging an event with its release costs a dictionary lookup, never a
query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from sluice.errors import NotFoundError
from sluice.releases.build import build_manifest
from sluice.releases.release import ReleaseError, release_id
from sluice.store.base import ReleaseStore


async def current_releases(
    store: ReleaseStore, app_dir: Path, workflows: Iterable[str]
) -> Mapping[str, str | None]:
    """For each workflow name, the id of the stored release matching its files, else None."""
    found: dict[str, str | None] = {}
    for name in workflows:
        try:
            candidate = release_id(build_manifest(app_dir, name))
        except ReleaseError:
            found[name] = None  # not releasable as it stands: no release can match
            continue
        try:
            found[name] = (await store.get_release(candidate)).id
        except NotFoundError:
            found[name] = None
    return found
