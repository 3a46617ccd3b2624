"""Seeded stratified splits of labelled CSVs, and the committed triage splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sluice.errors import ConfigError
from sluice.models.splits import Example, read_examples, stratified_split, write_splits

DATA = Path(__file__).resolve().parents[2] / "examples" / "triage" / "data"


def _examples() -> list[Example]:
    return [Example(f"text {label} {i}", label) for label in "abc" for i in range(40)]


class TestStratifiedSplit:
    def test_same_seed_same_split(self) -> None:
        """Two splits with one seed are identical; another seed differs."""
        fractions = {"validation": 0.15, "replay": 0.1}
        first = stratified_split(_examples(), fractions, seed=1)
        assert first == stratified_split(_examples(), fractions, seed=1)
        assert first != stratified_split(_examples(), fractions, seed=2)

    def test_parts_are_disjoint_complete_and_stratified(self) -> None:
        """Every example lands in exactly one part, each label in the requested share."""
        parts = stratified_split(_examples(), {"validation": 0.15, "replay": 0.1}, seed=3)
        texts = [e.text for part in parts.values() for e in part]
        assert sorted(texts) == sorted(e.text for e in _examples())
        assert Counter(e.label for e in parts["validation"]) == {"a": 6, "b": 6, "c": 6}
        assert Counter(e.label for e in parts["replay"]) == {"a": 4, "b": 4, "c": 4}

    def test_rejects_bad_fractions(self) -> None:
        """Fractions must be positive, leave a remainder, and not name the remainder."""
        for fractions in ({"train": 0.5}, {"v": 0.0}, {"v": 0.6, "r": 0.5}):
            with pytest.raises(ValueError, match="fraction"):
                stratified_split(_examples(), fractions, seed=0)


class TestTriageSplits:
    def test_committed_splits_regenerate_byte_for_byte(self, tmp_path: Path) -> None:
        """write_splits on the source CSV reproduces the committed train/validation/replay."""
        paths = write_splits(DATA / "banking77" / "train.csv", tmp_path)
        for name, path in paths.items():
            assert path.read_bytes() == (DATA / f"{name}.csv").read_bytes(), name

    def test_sizes_and_every_intent_everywhere(self) -> None:
        """About 75/15/10 percent, and all 77 intents in each part."""
        sizes = {name: read_examples(DATA / f"{name}.csv") for name in ("train", "validation")}
        replay = read_examples(DATA / "replay.csv")
        total = len(sizes["train"]) + len(sizes["validation"]) + len(replay)
        assert total == 10_003
        assert abs(len(sizes["validation"]) / total - 0.15) < 0.005
        assert abs(len(replay) / total - 0.10) < 0.005
        for part in (*sizes.values(), replay):
            assert len({e.label for e in part}) == 77


def test_read_examples_reports_wrong_columns(tmp_path: Path) -> None:
    """A CSV without text,category columns is a ConfigError naming the file."""
    path = tmp_path / "bad.csv"
    path.write_text("sentence,label\nhi,x\n")
    with pytest.raises(ConfigError, match=r"bad\.csv"):
        read_examples(path)
