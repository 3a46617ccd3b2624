"""What changed between two releases, field by field.

Each section of the manifest (the workflow file, step code, files, prompt templates, models,
thresholds, routing) is compared entry by entry; a change says which section, which entry
and the value before and after (None where an entry was added or removed). The workflow's
text is not repeated in a change: its digest says that it changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Manifest sections compared entry by entry, in the order changes are listed.
SECTIONS = ("workflow", "steps", "files", "prompts", "models", "thresholds", "routing")
#: Top-level fields compared as a whole.
_SCALARS = ("format", "sluice")


@dataclass(frozen=True, slots=True)
class Change:
    """One entry that differs: ``section`` (``steps``), ``key`` (``draft``), before and after."""

    section: str
    key: str
    before: Any
    after: Any

    @property
    def kind(self) -> str:
        """``added``, ``removed`` or ``changed``."""
        if self.before is None:
            return "added"
        return "removed" if self.after is None else "changed"

    def as_dict(self) -> dict[str, Any]:
        """The change as JSON-ready data."""
        return {"section": self.section, "key": self.key, "kind": self.kind,
                "before": self.before, "after": self.after}  # fmt: skip


def _section(manifest: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = manifest.get(name)
    if not isinstance(value, Mapping):
        return {}
    if name == "workflow":
        # The text is long; its digest stands for it.
        return {k: v for k, v in value.items() if k != "text"}
    return value


def diff_manifests(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """Every entry that differs between two manifests, section by section, keys sorted."""
    changes: list[Change] = []
    for name in _SCALARS:
        if before.get(name) != after.get(name):
            changes.append(Change(name, name, before.get(name), after.get(name)))
    for name in SECTIONS:
        old, new = _section(before, name), _section(after, name)
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                changes.append(Change(name, str(key), old.get(key), new.get(key)))
    return changes
