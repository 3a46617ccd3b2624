"""The triage app's masked fixtures still reproduce its behavioral snapshot, in an environment.

A small copy of the reference app (12 training tickets a label, as ``tests/examples`` builds
it) keeps its events on PostgreSQL. A snapshot of its cascade is taken on 200 held-out tickets
(``data/replay.csv``, evenly spaced). The same tickets then run through the whole workflow as
production traffic, each with a customer's e-mail address and phone number in its
``ticket_id`` (a field the workflow does not mask) and its label beside it; the events are
exported with ``--mask``, an environment is made on PostgreSQL and Redis and seeded with the
file, and the snapshot gate, pointed at what the environment holds, passes within its bands.
The same gate fails when the labels are shuffled, so the pass means something.
"""

from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path

import orjson
import pytest
import yaml

from sluice.models.splits import Example, read_examples, write_examples
from sluice.suites.snapshot import subset
from sluice.testing import TestApp
from tests.envs.test_env_cli import FIXTURES_KEY, sluice
from tests.examples.test_triage import CONFIG, EXAMPLE, build_small_triage_app
from tests.kv.conftest import REDIS_URL
from tests.store.conftest import POSTGRES_URL, drop_test_schema, new_schema, postgres_schema_url

ROWS = 200
SUITES = "snapshot:\n  snapshots: [tickets]\n"
# Latency is the machine's, not the data's: this snapshot judges what masking could move.
SNAPSHOT = """
snapshot: tickets
workflow: triage
data: data/reference.csv
repeats: 1
max_js_distance: 0.05
metrics:
  accuracy: {abs: 0.01}
  macro_f1: {abs: 0.015}
  escalation_rate: {abs: 0.03}
  cost_per_1k: {rel: 0.25}
"""
ENVIRONMENTS = f"""
environments:
  staging:
    store: {POSTGRES_URL}
    kv: {REDIS_URL}
    release: triage-test
"""


@pytest.fixture(scope="module")
def triage_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small triage app, its snapshot of 200 held-out tickets taken."""
    root = build_small_triage_app(tmp_path_factory.mktemp("triage-env"), CONFIG)
    replay = read_examples(EXAMPLE / "data" / "replay.csv")
    chosen = [replay[i] for i in subset(len(replay), ROWS)]
    write_examples(root / "data" / "reference.csv", chosen)
    (root / "tests" / "snapshots").mkdir(parents=True)
    (root / "tests" / "suites.yaml").write_text(SUITES)
    snapshot = root / "tests" / "snapshots" / "tickets.yaml"
    snapshot.write_text(SNAPSHOT)
    taken = sluice("test", "snapshot", str(root), "--update", "--write")
    assert taken.exit_code == 0, taken.output
    content = yaml.safe_load(snapshot.read_text())
    for metric in ("latency_p50_ms", "latency_p95_ms"):
        content["metrics"].pop(metric)
    snapshot.write_text(yaml.safe_dump(content, sort_keys=False))
    (root / "environments.yaml").write_text(ENVIRONMENTS)
    return root


def _customer(index: int) -> tuple[str, str]:
    """A distinct e-mail address and phone number per ticket."""
    return f"customer.{index}@bank-mail.example.org", f"+44 20 7946 {index:04d}"


async def _production(app_dir: Path, store: str, tickets: list[Example]) -> None:
    # A few at a time: the app sheds load when its p95 passes 3 s (its SLO), and this
    # machine is shared.
    gate = asyncio.Semaphore(4)
    async with TestApp(app_dir, store=store, tenant="bank") as app:

        async def one(index: int, ticket: Example) -> None:
            email, phone = _customer(index)
            data = {"text": ticket.text, "ticket_id": f"{email} {phone}",
                    "category": ticket.label}  # fmt: skip
            async with gate:
                run = await app.run("triage", data)
            assert run["status"] == "done", run

        await asyncio.gather(*(one(i, t) for i, t in enumerate(tickets)))


def _point_snapshot_at(app_dir: Path, data: str) -> None:
    path = app_dir / "tests" / "snapshots" / "tickets.yaml"
    text = path.read_text()
    path.write_text(re.sub(r"(?m)^data: .*$", f"data: {data}", text))


def test_masked_export_of_a_triage_run_reproduces_the_snapshot(
    triage_app: Path, tmp_path: Path
) -> None:
    """Export, seed, measure: within the bands; with the labels shuffled: outside them."""
    tickets = read_examples(triage_app / "data" / "reference.csv")
    schema = new_schema()
    try:
        asyncio.run(_production(triage_app, postgres_schema_url(schema), tickets))
        out = tmp_path / "triage.jsonl"
        env = {"SLUICE_STORE": postgres_schema_url(schema), "SLUICE_FIXTURES_KEY": FIXTURES_KEY}
        exported = sluice("fixtures", "export", "--app", str(triage_app), "--since", "1h",
                          "--mask", "--out", str(out), env=env)  # fmt: skip
        assert exported.exit_code == 0, exported.output
        assert f"{ROWS} events" in exported.stdout
    finally:
        asyncio.run(drop_test_schema(schema))
    data = out.read_bytes()
    for index in range(ROWS):
        email, phone = _customer(index)
        assert email.encode() not in data
        assert phone.encode() not in data
    first = orjson.loads(data.split(b"\n")[1])
    assert "@example." in first["input"]["ticket_id"]  # a fake address took the real one's place

    app = str(triage_app)
    assert sluice("env", "up", app, "staging").exit_code == 0
    try:
        seeded = sluice("env", "seed", app, "staging", "--fixtures", str(out), "--quiet")
        assert f"{ROWS} events" in seeded.stdout, seeded.output
        csv_path = triage_app / "data" / "from_env.csv"
        made = sluice("env", "labelled", app, "staging", "--out", str(csv_path),
                      "--workflow", "triage")  # fmt: skip
        assert f"{ROWS} rows" in made.stdout, made.output
        _point_snapshot_at(triage_app, "data/from_env.csv")
        gate = sluice("env", "test", app, "staging", "--gate", "snapshot", "--json")
        verdict = orjson.loads(gate.stdout)
        assert verdict["passed"] is True, [c for c in verdict["cases"] if not c["passed"]]
        assert verdict["release"] == "triage-test"

        # The same gate on the same texts with the labels shuffled fails: it measures.
        rows = read_examples(csv_path)
        labels = [row.label for row in rows]
        random.Random(14).shuffle(labels)
        shuffled = [Example(row.text, label) for row, label in zip(rows, labels, strict=True)]
        write_examples(triage_app / "data" / "shuffled.csv", shuffled)
        _point_snapshot_at(triage_app, "data/shuffled.csv")
        broken = sluice("env", "test", app, "staging", "--gate", "snapshot")
        assert broken.exit_code == 1, broken.output
        assert "accuracy" in broken.stdout
    finally:
        _point_snapshot_at(triage_app, "data/reference.csv")
        assert sluice("env", "down", app, "staging").exit_code == 0
