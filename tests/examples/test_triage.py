"""The triage reference app end to end, on real models trained on a BANKING77 subset.

The app is the real one (its workflow, step module, routing rules and reply templates); only
``sluice.yaml`` differs, so the models train on 12 tickets per intent in seconds.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import orjson
import pytest

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.config import load_settings
from sluice.ingress.apikeys import create_api_key
from sluice.ingress.intake import Ingress
from sluice.ingress.settings import parse_ingress
from sluice.models.base import ModelRequest
from sluice.models.splits import read_examples, write_examples
from sluice.outbound.signing import decode_secret, sign
from tests.cli.test_cli_runtime import sluice
from tests.models.conftest import per_label

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "triage"
SECRET = "whsec_ZGVtby1zZWNyZXQtZm9yLXRoZS10cmlhZ2UtYXBw"
CONFIG = """
store: sqlite:///.sluice/triage.db
pools:
  retrieval: {concurrency: 8, queue_limit: 2000}
  inference: {concurrency: 16, queue_limit: 2000}
  post: {concurrency: 16, queue_limit: 5000}
models:
  small: {kind: tfidf, train: data/train.csv, price_per_call: 0.000002}
  large: {kind: stacked, train: data/train.csv, price_per_call: 0.0002}
model_groups: {drafter: []}  # the draft step's models: none, its local fallback drafts
indexes:
  tickets: {embedder: wordllama, data: data/train.csv, templates: kb/templates.yaml}
caches:
  responses: {max_entries: 1000, ttl_s: 600}
  retrieval: {max_entries: 1000, ttl_s: 60}
sources:
  helpdesk:
    workflow: triage
    tenant: bank
    secrets: [SECRET]
    mapping:
      text: $.ticket.description
      subject: {path: $.ticket.subject, default: ""}
""".replace("SECRET]", SECRET + "]")
THRESHOLD = 0.7904  # the small model's threshold in examples/triage/workflows/triage.yaml


def build_small_triage_app(
    root: Path, config: str, edit_workflow: Callable[[str], str] = lambda text: text
) -> Path:
    """The triage app in ``root`` on 12 training tickets a label, its index built and its
    models trained; ``config`` is its ``sluice.yaml``, ``edit_workflow`` rewrites the workflow."""
    for part in ("workflows", "kb", "prompts"):
        shutil.copytree(EXAMPLE / part, root / part)
    shutil.copy(EXAMPLE / "routing.yaml", root / "routing.yaml")
    train = per_label(read_examples(EXAMPLE / "data" / "train.csv"), 12)
    write_examples(root / "data" / "train.csv", train)
    workflow = root / "workflows" / "triage.yaml"
    workflow.write_text(edit_workflow(workflow.read_text()))
    (root / "sluice.yaml").write_text(textwrap.dedent(config))
    built = sluice("index", "build", str(root), timeout=900)
    assert built.returncode == 0, built.stderr
    trained = sluice("train", str(root), timeout=900)  # two models; minutes on a busy machine
    assert trained.returncode == 0, trained.stderr
    return root


@pytest.fixture(scope="module")
def triage_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the triage app with small training data, its models and index built."""
    return build_small_triage_app(tmp_path_factory.mktemp("triage-app"), CONFIG)


@pytest.fixture
async def served(triage_app: Path) -> AsyncIterator[tuple[httpx.AsyncClient, SluiceApp, str]]:
    """The app behind its HTTP API, with an API key."""
    for stale in (triage_app / ".sluice").glob("triage.db*"):
        stale.unlink()
    settings = load_settings(triage_app)
    app = SluiceApp.from_settings(settings)
    gateway = Ingress(app, parse_ingress(settings))
    await app.start()
    _, key = await create_api_key(app.store, "bank", ("runner", "operator"))  # reads /v1/status
    transport = httpx.ASGITransport(app=create_http_app(app, gateway))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http, app, key
    await app.stop()


def _signed(body: bytes, msg_id: str) -> dict[str, str]:
    stamp = int(time.time())
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(decode_secret(SECRET), msg_id, stamp, body),
    }


async def test_a_webhook_ticket_is_triaged(
    served: tuple[httpx.AsyncClient, SluiceApp, str],
) -> None:
    """A signed ticket is masked, retrieved, classified, routed, drafted and delivered."""
    http, app, key = served
    body = orjson.dumps({"ticket": {
        "description": "Someone stole my card! Block it now. Reach me at ann@example.org",
        "subject": "stolen card"}})  # fmt: skip
    resp = await http.post("/v1/hooks/helpdesk", content=body, headers=_signed(body, "t-1"))
    assert resp.status_code == 202
    record = await app.runtime.wait(resp.json()["event_id"], 30)
    assert record.state.value == "done", record.error
    result = orjson.loads(record.result or b"{}")
    assert result["text"].endswith("Reach me at <EMAIL_1>")
    assert result["intent"] in {"lost_or_stolen_card", "compromised_card"}
    assert result["route"] == {"team": "security", "priority": "urgent", "queue": "security:urgent"}
    assert result["draft"]["reply"]
    assert "neighbours" not in result  # dropped by deliver: retrieval context stays internal
    assert [s.name for s in record.steps] == ["retrieve", "classify", "route", "draft", "deliver"]
    run = await http.get(f"/v1/runs/{record.id}", headers={"authorization": f"Bearer {key}"})
    assert run.json()["result"]["intent"] == result["intent"]


async def test_tickets_in_bulk_are_mostly_right_and_cached(
    served: tuple[httpx.AsyncClient, SluiceApp, str],
) -> None:
    """Held-out tickets sent twice: the cascade escalates exactly its low-confidence tickets to
    the large model, beats the small model alone, and the repeats hit the caches."""
    http, app, key = served
    held_out = per_label(read_examples(EXAMPLE / "data" / "validation.csv"), 1)[:40]
    auth = {"authorization": f"Bearer {key}"}
    ids = []
    for example in held_out * 2:
        resp = await http.post(
            "/v1/workflows/triage/runs", json={"text": example.text}, headers=auth
        )
        assert resp.status_code == 202
        ids.append(resp.json()["event_id"])
    records = await asyncio.gather(*(app.runtime.wait(i, 60) for i in ids))
    results = [orjson.loads(r.result or b"{}") for r in records]
    assert all(r.state.value == "done" for r in records), [r.error for r in records]
    labels = [result.get("intent") for result in results]
    right = sum(label == ex.label for label, ex in zip(labels, held_out * 2, strict=True))
    status = (await http.get("/v1/status", headers=auth)).json()
    assert status["caches"]["response_cache"]["hits"] >= len(held_out) - 5
    assert status["caches"]["retrieval_cache"]["hits"] >= len(held_out) - 5
    # The costly tier sits behind a breaker, healthy here.
    (large,) = [b for b in status["breakers"] if b["name"] == "model:large"]
    assert large["state"] == "closed"
    # Every model call is costed per tenant, workflow, step and model.
    scraped = (await http.get("/metrics")).text
    calls = [line for line in scraped.splitlines() if line.startswith("sluice_model_calls_total{")]
    small = [line for line in calls if 'model="small"' in line]
    assert small
    assert 'step="classify"' in small[0]
    assert 'tenant="bank"' in small[0]
    assert float(small[0].rsplit(" ", 1)[1]) == len(held_out) * 2
    # The small model alone, asked directly on the same (masked) texts: the cascade escalates
    # exactly the tickets it is unsure of, the large model answers those, and the cascade is
    # more accurate than the small model by itself.
    models = app.services["models"]
    alone = [await models["small"].predict(ModelRequest(text=r["text"])) for r in results[:40]]
    escalated = [r for r in results[:40] if r["escalated"]]
    assert [r["escalated"] for r in results[:40]] == [a.confidence < THRESHOLD for a in alone]
    assert escalated, "no ticket was escalated: the cascade never reached the large model"
    assert all(r["model"] == "large" and r["tiers"] == ["small", "large"] for r in escalated)
    assert all(r["model"] == "small" for r in results[:40] if not r["escalated"])
    assert [r["escalated"] for r in results[40:]] == [r["escalated"] for r in results[:40]]
    large_calls = [line for line in calls if 'model="large"' in line]  # cached repeats count
    assert sum(float(line.rsplit(" ", 1)[1]) for line in large_calls) == 2 * len(escalated)
    small_right = sum(a.label == ex.label for a, ex in zip(alone, held_out, strict=True))
    cascade_right = sum(r["intent"] == ex.label for r, ex in zip(results, held_out, strict=False))
    assert cascade_right > small_right, (cascade_right, small_right)
    assert right / len(labels) >= 0.6  # 12 training tickets per intent; the full app does ~93%


async def test_index_deltas_stream_in(
    served: tuple[httpx.AsyncClient, SluiceApp, str],
) -> None:
    """New resolved tickets are searchable at once; bad deltas are 422 and change nothing."""
    http, app, key = served
    auth = {"authorization": f"Bearer {key}"}
    index = app.services["indexes"]["tickets"]
    before = len(index)
    item = {"id": "new-1", "text": "my zorblax card melted in the microwave",
            "intent": "card_not_working", "resolution": "We will send a new card."}  # fmt: skip
    resp = await http.post("/v1/indexes/tickets/items", json={"items": [item]}, headers=auth)
    assert resp.json() == {"added": 1, "replaced": 0, "deleted": 0, "size": before + 1}
    assert index.search("zorblax card melted", 1)[0].item.id == "new-1"
    bad = await http.post("/v1/indexes/tickets/items", json={"items": [{"id": "x"}]}, headers=auth)
    assert bad.status_code == 422
    assert "items[0].text: required non-empty string" in bad.json()["errors"]
    gone = await http.post("/v1/indexes/tickets/items", json={"delete": ["new-1"]}, headers=auth)
    assert gone.json()["size"] == before
    missing = await http.post("/v1/indexes/nope/items", json={"items": []}, headers=auth)
    assert missing.status_code == 404
    # Refused deltas (no key, not JSON, too big, another media type) leave the index as it was.
    delta = orjson.dumps({"items": [{**item, "id": "new-2"}]})
    refused = [
        (401, {"content-type": "application/json"}, delta),
        (400, {**auth, "content-type": "application/json"}, b"{nope"),
        (413, {**auth, "content-type": "application/json"}, delta + b" " * (1 << 20)),
        (415, {**auth, "content-type": "text/plain"}, delta),
    ]
    for status, headers, content in refused:
        resp = await http.post("/v1/indexes/tickets/items", content=content, headers=headers)
        assert resp.status_code == status
        assert resp.headers["content-type"] == "application/problem+json"
        assert len(index) == before
        assert index.search("zorblax card melted", 1)[0].item.id != "new-2"


def test_eval_and_tune_commands(triage_app: Path, tmp_path: Path) -> None:
    """eval reports the documented keys on any text,category CSV; tune rewrites thresholds."""
    rows = per_label(read_examples(EXAMPLE / "data" / "validation.csv"), 2)
    data = tmp_path / "golden.csv"
    write_examples(data, [*rows, *read_examples(EXAMPLE / "data" / "replay.csv")[:3]])
    # eval and tune load both models (MiniLM too): minutes on a busy machine, not seconds.
    out = sluice("eval", str(triage_app), "--data", str(data), "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert set(figures) == {"n", "accuracy", "macro_f1", "escalation_rate", "cost_per_1k",
                            "latency_ms"}  # fmt: skip
    assert figures["n"] == len(rows) + 3
    assert 0.3 < figures["accuracy"] <= 1.0
    assert set(figures["latency_ms"]) == {"p50", "p95", "p99"}
    # A threshold tune never writes (it writes four decimals): the file must change to the
    # value tune reports, whatever that is.
    workflow = triage_app / "workflows" / "triage.yaml"
    workflow.write_text(re.sub(r"(model: small, threshold: )[0-9.]+", r"\g<1>0.12345",
                               workflow.read_text()))  # fmt: skip
    before = workflow.read_text()
    assert "{model: small, threshold: 0.12345}" in before
    tuned = sluice("tune", str(triage_app), "--data", str(data), "--target", "0.5", "--write",
                   timeout=300)  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr
    reported = re.match(r"thresholds ([0-9.]+):", tuned.stdout)
    assert reported is not None, tuned.stdout
    after = workflow.read_text()
    assert f"{{model: small, threshold: {reported[1]}}}" in after
    assert after == before.replace("0.12345", reported[1])  # the rest of the file is kept
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,label\nhi,x\n")
    refused = sluice("eval", str(triage_app), "--data", str(bad), timeout=300)
    assert refused.returncode == 2
    assert "expected columns" in refused.stderr
