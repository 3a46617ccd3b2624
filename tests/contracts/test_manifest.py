"""Reading contracts: the manifest, specs and their problems, each named with its path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import orjson
import pytest

from sluice.contracts.manifest import load_contracts
from sluice.contracts.schemas import SchemaError
from sluice.contracts.spec import load_spec
from sluice.errors import ConfigError
from tests.contracts.conftest import TRIAGE


def test_the_triage_contracts_load() -> None:
    contracts = load_contracts(TRIAGE)
    assert [s.name for s in contracts.sources] == ["helpdesk"]
    assert [(p.name, p.client, p.workflow) for p in contracts.partners] == [
        ("delivery", "webhook", "triage"),
        ("llm", "openai", None),
    ]
    chat = contracts.partners[1].spec
    assert chat.base_path == "/v1"
    assert [(op.method, op.path) for op in chat.operations] == [
        ("POST", "/chat/completions"),
        ("GET", "/models"),
    ]


def test_an_app_without_a_manifest_has_no_contracts(tmp_path: Path) -> None:
    contracts = load_contracts(tmp_path)
    assert (contracts.sources, contracts.partners) == ((), ())


def test_every_manifest_problem_is_reported_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "bad.yaml").write_text("type: objekt\n")
    (folder / "contracts.yaml").write_text(
        textwrap.dedent("""
        sources:
          a: {schema: missing.yaml}
          b: {schema: bad.yaml, extra: 1}
        partners:
          p: {spec: missing.yaml, client: grpc}
          q: nothing
        partner: {}
    """)
    )
    with pytest.raises(ConfigError) as info:
        load_contracts(tmp_path)
    found = info.value.problems
    assert "contracts.yaml: partner: unknown section (did you mean partners?)" in found
    assert any(p.startswith("contracts.yaml: sources.a.schema: cannot read ") for p in found)
    assert "contracts.yaml: sources.b.extra: unknown setting" in found
    assert any(
        p.startswith("contracts.yaml: sources.b.schema: ") and "not a valid JSON Schema" in p
        for p in found
    )
    assert "contracts.yaml: partners.p.client: must be one of webhook, openai, got 'grpc'" in found
    assert any(p.startswith("contracts.yaml: partners.q: expected {spec: FILE") for p in found)


def test_specs_inline_references_and_read_openapi_3_0_nullable(tmp_path: Path) -> None:
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "components": {
            "schemas": {
                "Item": {
                    "type": "object",
                    "properties": {
                        "note": {"type": "string", "nullable": True},
                        "example": {"type": "integer"},  # a property named like an OpenAPI keyword
                    },
                }
            }
        },
        "paths": {
            "/items/{id}": {
                "put": {
                    "parameters": [{"name": "id", "in": "path", "schema": {"type": "integer"}}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Item"}}
                        },
                    },
                    "responses": {"204": {"description": "stored"}},
                }
            }
        },
    }
    path = tmp_path / "items.json"
    path.write_bytes(orjson.dumps(doc))
    spec = load_spec(path)
    headers = {"content-type": "application/json"}
    ok = orjson.dumps({"note": None, "example": 3})
    assert spec.check_request("PUT", "/items/12", headers, {}, ok)[1] == []
    op, found = spec.check_request("PUT", "/items/abc", headers, {}, b'{"example": "x"}')
    assert op is not None
    assert found == [
        "path id: 'abc' is not of type 'integer'",
        "body $.example: 'x' is not of type 'integer'",
    ]


def test_a_recursive_or_dangling_reference_names_where_it_is(tmp_path: Path) -> None:
    base = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}}
    loop = {
        **base,
        "components": {"schemas": {"A": {"$ref": "#/components/schemas/A"}}},
        "paths": {
            "/a": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/A"}}
                        }
                    },
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    path = tmp_path / "loop.json"
    path.write_bytes(orjson.dumps(loop))
    with pytest.raises(SchemaError, match=r"POST /a requestBody: \$ref nesting deeper than 32"):
        load_spec(path)
    dangling = {**loop, "components": {}}
    path.write_bytes(orjson.dumps(dangling))
    with pytest.raises(SchemaError, match=r"\$ref '#/components/schemas/A' points at nothing"):
        load_spec(path)
