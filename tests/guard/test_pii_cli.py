"""``sluice pii mask``: standard input in, masked lines or JSON lines out."""

from __future__ import annotations

import orjson
from typer.testing import CliRunner

from sluice.cli.main import build_app

INPUT = "mail jo@x.io or call +44 20 7946 0958, jo@x.io\nnothing here\n"


def test_mask_lines() -> None:
    """Each input line comes out masked, placeholders numbered per line."""
    result = CliRunner().invoke(build_app(), ["pii", "mask"], input=INPUT)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "mail <EMAIL_1> or call <PHONE_1>, <EMAIL_1>",
        "nothing here",
    ]


def test_mask_json() -> None:
    """--json prints one object per line with offsets into the input line."""
    result = CliRunner().invoke(build_app(), ["pii", "mask", "--json"], input=INPUT)
    assert result.exit_code == 0, result.output
    first, second = (orjson.loads(line) for line in result.stdout.splitlines())
    line = INPUT.splitlines()[0]
    assert first["masked"] == "mail <EMAIL_1> or call <PHONE_1>, <EMAIL_1>"
    assert [line[e["start"] : e["end"]] for e in first["entities"]] == [
        "jo@x.io",
        "+44 20 7946 0958",
        "jo@x.io",
    ]
    assert first["entities"][0] == {"type": "EMAIL", "start": 5, "end": 12}
    assert second == {"masked": "nothing here", "entities": []}


def test_type_filter_and_errors() -> None:
    """--type limits the types; an unknown one exits 2 with the problem on stderr."""
    runner = CliRunner()
    only_phone = runner.invoke(build_app(), ["pii", "mask", "--type", "PHONE"], input=INPUT)
    assert only_phone.stdout.splitlines()[0] == "mail jo@x.io or call <PHONE_1>, jo@x.io"
    bad = runner.invoke(build_app(), ["pii", "mask", "--type", "PASSPORT"], input=INPUT)
    assert bad.exit_code == 2
    assert "PASSPORT" in bad.stderr
