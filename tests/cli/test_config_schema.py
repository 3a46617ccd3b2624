"""The JSON Schemas and the configuration reference: published copies equal what the schema
module generates, the example apps validate, and the schema is probed against the real
parsers (what it documents is accepted; an unknown key where it closes an object is refused,
naming the key)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sluice.cli.config_check import check_app
from sluice.cli.config_schema import APP_SECTIONS, Schema, app_schema, reference, workflow_schema
from sluice.config import SECTIONS
from sluice.examples import EXAMPLES, example_dir

ROOT = Path(__file__).resolve().parents[2]
PROBE = "zz_probe"


def test_published_copies_equal_the_generated_ones() -> None:
    fix = "regenerate with `sluice config schema [--workflow]` / `sluice config reference`"
    app = json.loads((ROOT / "docs/schema/sluice.schema.json").read_text())
    assert app == app_schema(), fix
    flow = json.loads((ROOT / "docs/schema/workflow.schema.json").read_text())
    assert flow == workflow_schema(), fix
    assert (ROOT / "docs/configuration.md").read_text() == reference(), fix


def test_the_schema_has_exactly_the_known_sections() -> None:
    assert list(APP_SECTIONS) == list(SECTIONS)


def test_the_schemas_are_valid_json_schemas() -> None:
    jsonschema.Draft202012Validator.check_schema(app_schema())
    jsonschema.Draft202012Validator.check_schema(workflow_schema())


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_example_apps_validate(name: str) -> None:
    app = example_dir(name)
    jsonschema.validate(yaml.safe_load((app / "sluice.yaml").read_text()), app_schema())
    for path in sorted((app / "workflows").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), workflow_schema())


def _build(schema: Schema, choice: int = 0) -> Any:
    """A value with every documented key, from each leaf's example; ``oneOf`` takes option
    ``choice`` (else its first)."""
    if "oneOf" in schema:
        options = schema["oneOf"]
        return _build(options[min(choice, len(options) - 1)])
    if "examples" in schema:
        return copy.deepcopy(schema["examples"][0])
    if schema.get("type") == "array":
        return [_build(schema["items"], choice)]
    value: dict[str, Any] = {
        key: _build(sub, choice) for key, sub in (schema.get("properties") or {}).items()
    }
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and "x-example-key" in schema:
        value[schema["x-example-key"]] = _build(extra, choice)
    return value


def _closed(schema: Schema, value: Any, path: tuple[Any, ...] = (), choice: int = 0) -> list[Any]:
    """(path in ``value``) of every object the schema closes to unknown keys."""
    if "oneOf" in schema:
        schema = schema["oneOf"][min(choice, len(schema["oneOf"]) - 1)]
    found = []
    if schema.get("additionalProperties") is False and isinstance(value, dict):
        found.append(path)
    for key, sub in (schema.get("properties") or {}).items():
        if isinstance(value, dict) and key in value and "examples" not in sub:
            found += _closed(sub, value[key], (*path, key), choice)
    extra = schema.get("additionalProperties")
    key = schema.get("x-example-key")
    if isinstance(extra, dict) and key and isinstance(value, dict) and key in value:
        found += _closed(extra, value[key], (*path, key), choice)
    if schema.get("type") == "array" and isinstance(value, list) and value:
        found += _closed(schema["items"], value[0], (*path, 0), choice)
    return found


def _problems(tmp_path: Path, section: str, value: Any) -> list[str]:
    app = tmp_path / "app"
    (app / "workflows").mkdir(parents=True, exist_ok=True)
    (app / "data").mkdir(exist_ok=True)
    (app / "data/train.csv").write_text("text,category\nlost my card,card_lost\n")
    (app / "sluice.yaml").write_text(yaml.safe_dump({section: value}))
    return [str(p) for p in check_app(app)["problems"]]


def _options(schema: Schema) -> int:
    """How many ``oneOf`` choices the section has (its models: local or remote)."""
    counts = [len(schema.get("oneOf", ()))]
    for sub in (schema.get("properties") or {}).values():
        counts.append(_options(sub))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        counts.append(_options(extra))
    return max(counts)


PROBES = [(s, c) for s, schema in APP_SECTIONS.items() for c in range(max(_options(schema), 1))]


@pytest.mark.parametrize(("section", "choice"), PROBES)
def test_every_documented_key_is_accepted(tmp_path: Path, section: str, choice: int) -> None:
    value = _build(APP_SECTIONS[section], choice)
    unknown = [p for p in _problems(tmp_path, section, value) if "unknown" in p]
    assert not unknown, f"{section}: the schema documents keys the parser refuses: {unknown}"


@pytest.mark.parametrize(("section", "choice"), PROBES)
def test_an_unknown_key_is_refused_wherever_the_schema_closes(
    tmp_path: Path, section: str, choice: int
) -> None:
    schema = APP_SECTIONS[section]
    base = _build(schema, choice)
    for path in _closed(schema, base, choice=choice):
        value = copy.deepcopy(base)
        target = value
        for part in path:
            target = target[part]
        target[PROBE] = 1
        problems = _problems(tmp_path, section, value)
        where = ".".join(str(p) for p in (section, *path))
        assert any(PROBE in p for p in problems), f"{where}.{PROBE} was accepted: {problems}"
