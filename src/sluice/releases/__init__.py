"""Releases: immutable, content-addressed bundles of one workflow version.

A release pins the workflow file, a digest of each step's code, the files its steps read, the
prompt templates and trained model artifacts it uses, and its cascade thresholds and routing.
Its id is a digest of that manifest: the same app built twice gives the same id, any change a
new one. ``sluice release create|list|show|diff`` work on them; ``docs/releases.md`` explains
what is built and what is not yet.
"""

from sluice.releases.build import build_manifest, build_release, sluice_version
from sluice.releases.current import current_releases
from sluice.releases.diff import SECTIONS, Change, diff_manifests
from sluice.releases.release import (
    MANIFEST_FORMAT,
    Release,
    ReleaseError,
    canonical_json,
    release_id,
)

__all__ = [
    "MANIFEST_FORMAT",
    "SECTIONS",
    "Change",
    "Release",
    "ReleaseError",
    "build_manifest",
    "build_release",
    "canonical_json",
    "current_releases",
    "diff_manifests",
    "release_id",
    "sluice_version",
]
