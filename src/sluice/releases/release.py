"""A release: an immutable, content-addressed bundle of one workflow version.

The manifest lists everything that decides what the workflow does: the workflow file (text and
digest), a digest of each step's code, the files its steps read (routing rules, reply
templates), the prompt templates and the model artifacts it uses, and the cascade thresholds.
The release id is a digest of that manifest in canonical JSON, so building the same app twice
gives the same id and any change gives a new one. Who created it, when and why are kept beside
the manifest, outside the digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from sluice.errors import ConfigError
from sluice.store.base import ReleaseRecord

#: Bumped when the manifest's layout changes (old releases keep their ids and layout).
MANIFEST_FORMAT = 1
ID_PREFIX = "r_"


class ReleaseError(ConfigError):
    """A release cannot be built: an unknown workflow, a missing model artifact or file."""


def canonical_json(value: Any) -> bytes:
    """``value`` as JSON with sorted keys and no whitespace: the bytes a digest is taken of."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def release_id(manifest: Mapping[str, Any]) -> str:
    """``r_`` and the first 16 hex digits of the SHA-256 of the canonical manifest."""
    return ID_PREFIX + hashlib.sha256(canonical_json(dict(manifest))).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Release:
    """One release of a workflow; ``id`` is :func:`release_id` of ``manifest``."""

    id: str
    workflow: str
    version: str
    manifest: Mapping[str, Any]
    created_at: float
    created_by: str = ""
    note: str = ""

    @classmethod
    def of(
        cls, manifest: Mapping[str, Any], *, created_at: float, created_by: str = "", note: str = ""
    ) -> Release:
        """A release of ``manifest``, its id computed from it."""
        workflow = manifest["workflow"]
        return cls(
            id=release_id(manifest), workflow=str(workflow["name"]),
            version=str(workflow["version"]), manifest=manifest, created_at=created_at,
            created_by=created_by, note=note,
        )  # fmt: skip

    def to_record(self) -> ReleaseRecord:
        """The row the store keeps."""
        return ReleaseRecord(
            id=self.id, workflow=self.workflow, manifest=self.manifest,
            created_at=self.created_at, created_by=self.created_by, note=self.note,
        )  # fmt: skip

    @classmethod
    def from_record(cls, record: ReleaseRecord) -> Release:
        """A release read back from the store (its id as stored, never recomputed)."""
        workflow = record.manifest.get("workflow", {})
        return cls(
            id=record.id, workflow=record.workflow, version=str(workflow.get("version", "")),
            manifest=record.manifest, created_at=record.created_at,
            created_by=record.created_by, note=record.note,
        )  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """The fields a listing shows (no manifest)."""
        return {
            "id": self.id, "workflow": self.workflow, "version": self.version,
            "created_at": self.created_at, "created_by": self.created_by, "note": self.note,
        }  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """Everything, manifest included (``release show --json``)."""
        return {**self.summary(), "manifest": dict(self.manifest)}
