"""``sluice index build / info / query``, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sluice.models.splits import read_examples, write_examples
from tests.models.conftest import per_label
from tests.retrieval.conftest import DATA, TEMPLATES


def sluice(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command in a subprocess, offline."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "sluice", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_build_info_query(tmp_path: Path) -> None:
    """build embeds the given rows with progress, info shows the meta, query finds them."""
    app = tmp_path / "app"
    (app / "kb").mkdir(parents=True)
    (app / "kb" / "templates.yaml").write_text(TEMPLATES.read_text())
    write_examples(app / "tickets.csv", per_label(read_examples(DATA / "train.csv"), 3))
    (app / "sluice.yaml").write_text(
        "indexes:\n  faq:\n    embedder: wordllama\n    max_items: 1000\n"
    )
    # --data stands in for the configured default (data/train.csv, absent here).
    built = sluice(
        "index", "build", str(app), "--data", str(app / "tickets.csv"), "--batch-size", "100"
    )
    assert built.returncode == 0, built.stderr
    summary = json.loads(built.stdout)
    assert summary["index"] == "faq"
    assert summary["items"] == 231
    assert "embedded 231/231" in built.stderr
    assert (app / ".sluice" / "indexes" / "faq" / "vectors.npy").exists()

    info = json.loads(sluice("index", "info", str(app)).stdout)
    assert info["embedder"]["name"] == "wordllama-l2_supercat"

    found = sluice("index", "query", str(app), "I forgot my passcode", "-k", "2")
    rows = [json.loads(line) for line in found.stdout.splitlines()]
    assert len(rows) == 2
    assert rows[0]["intent"] == "passcode_forgotten"
    as_list = sluice("index", "query", str(app), "I forgot my passcode", "-k", "2", "--json")
    assert json.loads(as_list.stdout) == rows

    refused = sluice("index", "query", str(app), "hi", "--embedder", "minilm")
    assert refused.returncode == 2
    assert "was built with embedder wordllama-l2_supercat" in refused.stderr


def test_bad_config_lists_every_problem(tmp_path: Path) -> None:
    """A bad indexes section is refused with every problem and its path."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "sluice.yaml").write_text("indexes:\n  faq: {embedder: bert, max_items: 0}\n")
    bad = sluice("index", "build", str(app))
    assert bad.returncode == 2
    assert "indexes.faq.embedder: unknown embedder 'bert'" in bad.stderr
    assert "indexes.faq.max_items: expected a positive integer" in bad.stderr
