"""Inbound contracts: generated payloads through the real way in of the app."""

from __future__ import annotations

from pathlib import Path

import yaml

from sluice.contracts.inbound import check_inbound, static_problems
from sluice.contracts.manifest import load_contracts
from sluice.ingress.settings import SourceSettings

EXAMPLES = 20


async def test_triage_helpdesk_payloads_are_accepted_or_quarantined_never_a_5xx(
    triage_copy: Path,
) -> None:
    contracts = load_contracts(triage_copy)
    [result] = await check_inbound(triage_copy, contracts.sources, examples=EXAMPLES)
    assert result.passed, result.message
    assert result.name == "inbound:helpdesk"
    valid, broken, noise = (result.figures[k] for k in ("valid", "broken", "random"))
    assert valid["sent"] == valid["accepted"] == EXAMPLES
    # Each valid payload yields broken ones where the mapping reads: text removed, and text
    # and ticket_id of the wrong type (a list, which the `str` transform still maps).
    assert broken["sent"] >= EXAMPLES
    assert broken["quarantined"] == broken["sent"]
    assert noise["sent"] > 0
    assert noise["server_errors"] == 0
    assert result.message.startswith(
        f"inbound helpdesk -> triage: {EXAMPLES}/{EXAMPLES} valid payloads accepted; "
    )


async def test_a_renamed_source_field_fails_the_inbound_contract(triage_copy: Path) -> None:
    """The helpdesk renames ticket.description to ticket.body; the mapping still reads the old
    name, so every valid payload is quarantined and the check says so."""
    path = triage_copy / "contracts/sources/helpdesk.schema.yaml"
    schema = yaml.safe_load(path.read_text())
    ticket = schema["properties"]["ticket"]
    ticket["properties"]["body"] = ticket["properties"].pop("description")
    ticket["required"] = ["id", "body"]
    path.write_text(yaml.safe_dump(schema))
    contracts = load_contracts(triage_copy)
    [result] = await check_inbound(triage_copy, contracts.sources, examples=EXAMPLES)
    assert not result.passed
    assert result.figures["valid"] == {
        "sent": EXAMPLES,
        "accepted": 0,
        "quarantined": EXAMPLES,
        "refused": 0,
        "server_errors": 0,
    }
    assert f"0/{EXAMPLES} valid payloads accepted" in result.message
    assert result.problems[0] == (
        "mapping.text: $.ticket.description: the source schema has no 'description' under "
        "$.ticket (it has: body, id, requester, subject)"
    )
    assert (
        "valid payload quarantined: mapping: text: $.ticket.description not found in the payload"
        in result.problems
    )


def test_static_problems_name_missing_and_optional_paths() -> None:
    source = SourceSettings(
        "s",
        "w",
        "t",
        ("x",),
        {
            "a": "$.x.a",
            "b": {"path": "$.x.b"},
            "c": {"path": "$.x.c", "default": ""},
            "d": "$.items[0].id",
            "k": {"const": 1},
        },
    )
    schema = {
        "type": "object",
        "required": ["x"],
        "properties": {
            "x": {"type": "object", "required": ["a"], "properties": {"a": {}, "b": {}, "c": {}}},
            "items": {"type": "array", "items": {"type": "object", "properties": {"id": {}}}},
        },
    }
    assert static_problems(source, schema) == [
        "mapping.b: $.x.b: 'b' is optional in the source schema and the mapping gives no default",
        "mapping.d: $.items[0].id: 'items' is optional in the source schema and the mapping "
        "gives no default",
    ]
