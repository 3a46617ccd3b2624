"""Building a release from an app's files: what the manifest pins, that the id is a content
digest (same app, same id; any change, a new id) and clear errors for bad input."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from sluice.errors import ConfigError
from sluice.models.registry import models_dir
from sluice.releases import (
    Release,
    ReleaseError,
    build_manifest,
    build_release,
    diff_manifests,
    release_id,
    sluice_version,
)


def _release(app: Path) -> Release:
    return build_release(app, "triage", created_at=1.0)


def test_the_manifest_pins_every_part_of_the_workflow(app: Path) -> None:
    """Workflow file, step code, files read, models by artifact, thresholds and routing."""
    manifest = build_manifest(app, "triage")
    workflow_text = (app / "workflows" / "triage.yaml").read_text()
    assert manifest["workflow"]["name"] == "triage"
    assert manifest["workflow"]["version"] == "1"
    assert manifest["workflow"]["file"] == "workflows/triage.yaml"
    assert manifest["workflow"]["text"] == workflow_text
    steps = manifest["steps"]
    assert manifest["workflow"]["steps"] == ["retrieve", "classify", "route", "draft", "deliver"]
    assert set(steps) == set(manifest["workflow"]["steps"])
    assert steps["classify"] == {"uses": "classify", "code": f"sluice-{sluice_version()}"}
    # A built-in generate step: its fallback, code of the app's, is pinned by file and digest.
    assert steps["draft"]["code"] == f"sluice-{sluice_version()}"
    fallback = steps["draft"]["app_code"]["triage_steps:local_draft"]
    assert fallback["file"] == "workflows/triage_steps.py"
    assert fallback["code"].startswith("sha256:")
    assert set(manifest["files"]) == {"routing.yaml", "kb/templates.yaml"}
    artifacts = {p.name for p in models_dir(app).iterdir()}
    assert {m["artifact"] for m in manifest["models"].values()} == artifacts
    assert set(manifest["models"]) == {"small", "large"}
    assert manifest["thresholds"] == {
        "classify": [
            {"model": "small", "threshold": 0.7904},
            {"model": "large", "threshold": None},
        ]
    }
    assert manifest["routing"] == {"route": "routing.yaml"}
    assert set(manifest["prompts"]) == {"draft_reply"}  # the draft step's template


def test_the_same_app_gives_the_same_id_wherever_it_lives(app: Path, tmp_path: Path) -> None:
    """Built twice, and built from a copy in another directory: one id, the manifest's digest."""
    first, second = _release(app), _release(app)
    assert first.id == second.id == release_id(first.manifest)
    assert first.id.startswith("r_")
    assert len(first.id) == 18
    moved = tmp_path / "elsewhere" / "triage"
    shutil.copytree(app, moved)
    assert _release(moved).id == first.id
    noted = build_release(app, "triage", created_at=99.0, created_by="ops", note="why")
    assert noted.id == first.id  # who, when and why stay outside the digest


def _edit(relative: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(app: Path) -> None:
        path = app / relative
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, 1))

    return edit


CHANGES = {
    "threshold": (
        _edit("workflows/triage.yaml", "threshold: 0.7904", "threshold: 0.81"),
        [("workflow", "digest"), ("thresholds", "classify")],
    ),
    "step code": (
        _edit("workflows/triage_steps.py", "_CONFIDENT = 0.5", "_CONFIDENT = 0.6"),
        [("steps", "draft")],
    ),
    "routing rules": (
        _edit("routing.yaml", "# Where", "# Where,"),
        [("files", "routing.yaml")],
    ),
    "reply templates": (
        _edit("kb/templates.yaml", "a", "A"),
        [("files", "kb/templates.yaml")],
    ),
    "workflow version": (
        _edit("workflows/triage.yaml", "version: 1", "version: 2"),
        [("workflow", "digest"), ("workflow", "version")],
    ),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_change_gives_a_new_id_and_the_diff_names_it(app: Path, change: str) -> None:
    """Each kind of change moves the id, and the diff lists exactly the entries it touched."""
    edit, expected = CHANGES[change]
    before = _release(app)
    edit(app)
    after = _release(app)
    assert after.id != before.id
    found = [(c.section, c.key) for c in diff_manifests(before.manifest, after.manifest)]
    assert found == expected
    assert diff_manifests(after.manifest, after.manifest) == []


def test_a_prompt_template_is_pinned_by_id_and_digest(app: Path) -> None:
    """A step naming a template pins ``name@version`` and the file's digest."""
    before = build_manifest(app, "triage")
    (template,) = before["prompts"].values()
    assert template["id"].startswith("draft_reply@")
    assert template["digest"].startswith("sha256:")
    _edit("prompts/draft_reply.yaml", "\n", "\n# reworded\n")(app)
    after = build_manifest(app, "triage")
    changes = diff_manifests(before, after)
    assert [(c.section, c.key, c.kind) for c in changes] == [("prompts", "draft_reply", "changed")]


def test_new_training_data_needs_a_new_artifact(app: Path) -> None:
    """Changed training data names an artifact that is not trained yet: the build says which
    model and where, rather than pinning a stale one."""
    train = app / "data" / "train.csv"
    train.write_text(train.read_text() + "a brand new ticket,card_arrival\n")
    missing = r"model '(large|small)': missing artifact .*sluice train"
    with pytest.raises(ReleaseError, match=missing):
        build_manifest(app, "triage")


def test_a_missing_training_file_is_named(app: Path) -> None:
    (app / "data" / "train.csv").unlink()
    with pytest.raises(ReleaseError, match=r"training data .*train\.csv does not exist"):
        build_manifest(app, "triage")


def test_an_unknown_workflow_is_named_with_the_known_ones(app: Path) -> None:
    with pytest.raises(ReleaseError, match=r"unknown workflow 'triaj' .*\(known: triage\)"):
        build_manifest(app, "triaj")


def test_a_broken_workflow_file_is_a_config_error(app: Path) -> None:
    _edit("workflows/triage.yaml", "pool: post", "pool: nowhere")(app)
    with pytest.raises(ConfigError, match="invalid workflow") as caught:
        build_manifest(app, "triage")
    assert any("unknown pool 'nowhere'" in p for p in caught.value.problems)
