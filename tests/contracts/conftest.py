"""A tiny app with contracts: a webhook source, a custom step, and a signed delivery."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from tests.conftest import MakeApp

ROOT = Path(__file__).resolve().parents[2]
TRIAGE = ROOT / "examples/triage"

CONFIG = """
store: sqlite:///.sluice/app.db
pools:
  work: {concurrency: 4, queue_limit: 100}
sources:
  shop:
    workflow: orders
    tenant: acme
    secrets: [whsec_c2hvcC1zZWNyZXQtZm9yLXRlc3Rz]  # pragma: allowlist secret
    mapping:
      order_id: {path: $.order.id, transform: str}
      note: {path: $.order.note, default: ""}
      amount: $.order.amount
"""
WORKFLOW = """
name: orders
version: 1
input_schema:
  type: object
  required: [order_id, amount]
  properties:
    order_id: {type: string, minLength: 1, maxLength: 40}
    note: {type: string, maxLength: 200}
    amount: {type: integer, minimum: 0}
steps:
  - {name: score, pool: work, uses: "order_steps:score"}
  - {name: deliver, pool: work, uses: deliver}
"""
STEPS = '''
"""The tiny app's own step."""

from sluice.workflow import JSONObject, StepContext


async def score(ctx: StepContext, data: JSONObject) -> JSONObject:
    """Flag big orders."""
    return {**data, "risk": "high" if data["amount"] > 1000 else "low"}
'''
MANIFEST = """
sources:
  shop: {schema: sources/shop.yaml}
partners:
  ledger: {spec: partners/ledger.yaml, client: webhook}
"""
SHOP = """
type: object
required: [order]
properties:
  order:
    type: object
    required: [id, amount]
    properties:
      id: {type: integer, minimum: 1}
      amount: {type: integer, minimum: 0, maximum: 100000}
      note: {type: string, maxLength: 100}
"""
LEDGER = """
openapi: 3.1.0
info: {title: ledger, version: "1"}
paths:
  /orders:
    post:
      parameters:
        - {name: webhook-id, in: header, required: true, schema: {type: string}}
        - {name: webhook-signature, in: header, required: true, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [event_id, result]
              properties:
                event_id: {type: string}
                result:
                  type: object
                  required: [order_id, amount, risk]
                  properties:
                    order_id: {type: string}
                    amount: {type: integer}
                    risk: {enum: [low, high]}
      responses:
        "200":
          description: booked
          content:
            application/json:
              schema:
                type: object
                required: [booked]
                properties: {booked: {type: boolean}}
"""


def write_contracts(app_dir: Path, files: dict[str, str]) -> None:
    """Write files under the app's contracts folder."""
    for name, text in files.items():
        path = app_dir / "contracts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def tiny_app(make_app: MakeApp) -> Path:
    """The tiny app with its contracts."""
    app_dir = make_app(CONFIG, {"orders.yaml": WORKFLOW}, {"order_steps.py": STEPS})
    write_contracts(
        app_dir,
        {"contracts.yaml": MANIFEST, "sources/shop.yaml": SHOP, "partners/ledger.yaml": LEDGER},
    )
    return app_dir


@pytest.fixture
def triage_copy(tmp_path: Path) -> Path:
    """A copy of the triage app's configuration, workflows and contracts (no data)."""
    target = tmp_path / "triage"
    shutil.copytree(TRIAGE, target, ignore=shutil.ignore_patterns("data", ".sluice"))
    (target / "data/banking77").mkdir(parents=True)
    shutil.copy(TRIAGE / "data/banking77/categories.json", target / "data/banking77")
    return target
