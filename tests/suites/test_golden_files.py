"""Golden suite files: assertions, acceptable answers, and errors that name file, line, field."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from sluice.suites import RunOutput, SuiteError
from sluice.suites.golden import judge, load_suite, propose

SUITE = """\
suite: tickets
version: 1
workflow: triage
output_schema:
  type: object
  required: [intent]
  properties: {confidence: {type: number, maximum: 1}}
cases:
  - name: exact
    input: {text: a}
    expect: {intent: lost_card, route.team: security}
  - name: ranges
    input: {text: b}
    expect:
      confidence: {min: 0.5, max: 1}
      route.team: {one_of: [cards, security]}
      reply: {pattern: "^Please freeze"}
  - name: either
    input: {text: c}
    expect:
      - {intent: extra_charge, route.team: payments}
      - {intent: card_fee, route: {equals: {team: payments}}}
"""


def write(tmp_path: Path, text: str, name: str = "tickets.v1.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def done(result: dict[str, object]) -> RunOutput:
    return RunOutput("done", result, None, 0.01)


def ranged(confidence: float, team: str, reply: str) -> RunOutput:
    """An output for the ``ranges`` case."""
    return done({"intent": "x", "confidence": confidence, "route": {"team": team}, "reply": reply})


def test_each_kind_of_assertion_passes_and_fails_with_the_field_and_figures(
    tmp_path: Path,
) -> None:
    """Exact, one-of, range and pattern assertions, and a case with two acceptable answers:
    a pass when one holds, else the closest answer's problems, naming case and field."""
    suite = load_suite(write(tmp_path, SUITE))
    good = [
        done({"intent": "lost_card", "route": {"team": "security"}}),
        ranged(0.7, "cards", "Please freeze it"),
        done({"intent": "card_fee", "route": {"team": "payments"}}),
    ]  # fmt: skip
    assert [r.passed for r in judge(suite, good)] == [True, True, True]
    bad = [
        done({"intent": "lost_card", "route": {"team": "cards"}}),
        ranged(0.2, "general", "Hi"),
        done({"intent": "card_fee", "route": {"team": "cash"}}),
    ]  # fmt: skip
    results = judge(suite, bad)
    assert [r.passed for r in results] == [False, False, False]
    assert results[0].message == "exact (line 9): route.team: expected 'security', got 'cards'"
    assert results[1].message == (
        "ranges (line 12): confidence: expected >= 0.5, got 0.2;"
        " route.team: expected one of ['cards', 'security'], got 'general';"
        " reply: 'Hi' does not match '^Please freeze'"
    )
    # The closest acceptable answer (one problem, not two) is the one reported.
    assert results[2].message == (
        "either (line 18): route: expected {'team': 'payments'}, got {'team': 'cash'}"
    )
    assert results[0].figures["route.team"] == "cards"
    assert results[0].suite == "tickets.v1"


def test_schema_missing_fields_and_dead_runs_fail(tmp_path: Path) -> None:
    """The output schema is checked first; a missing field and a dead run are failures."""
    suite = load_suite(write(tmp_path, SUITE))
    results = judge(
        suite,
        [
            done({"route": {"team": "security"}}),
            ranged(3, "cards", "Please freeze"),
            RunOutput("dead", None, "StepError: model down", 0.5),
        ],
    )  # fmt: skip
    assert results[0].message.startswith(
        "exact (line 9): output_schema: (root): 'intent' is a required property;"
        " intent: missing from the output"
    )
    assert "output_schema: confidence: 3 is greater than the maximum of 1" in results[1].message
    assert results[2].message == "either (line 18): the run ended dead: StepError: model down"


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("    expect: {intent: lost_card, route.team: security}",
         "    expect: {intent: {equal: lost_card}}",
         ":11: cases[0].expect.intent.equal: unknown assertion (did you mean equals?)"),
        ("      confidence: {min: 0.5, max: 1}", "      confidence: {min: high}",
         ":15: cases[1].expect.confidence.min: must be a number, got 'high'"),
        ("      reply: {pattern: \"^Please freeze\"}", "      reply: {pattern: \"(\"}",
         ":17: cases[1].expect.reply.pattern: invalid regular expression"),
        ("  - name: ranges", "  - name: exact", ":12: cases[1].name: duplicate case name 'exact'"),
        ("      route.team: {one_of: [cards, security]}", "      route.team: {one_of: []}",
         ":16: cases[1].expect.route.team.one_of: must be a non-empty list"),
        ("  - name: ranges\n    input: {text: b}\n", "  - name: ranges\n    inptu: {text: b}\n",
         ":13: cases[1].inptu: unknown key (did you mean input?)"),
        ("      - {intent: extra_charge, route.team: payments}", "      - []",
         ":21: cases[2].expect[0]: each acceptable answer must be a non-empty mapping"),
        ("properties: {confidence: {type: number, maximum: 1}}",
         "properties: {confidence: {type: numbr}}",
         ":4: output_schema.properties.confidence.type: invalid schema"),
        ("version: 1", "version: 0", ":2: version: must be a positive integer, got 0"),
        ("version: 1", "version: 2", ":1: suite: the file name says tickets v1, the file says"),
        ("    input: {text: a}\n", "    input: {text: a\n", ": invalid YAML"),
    ],
)  # fmt: skip
def test_a_malformed_suite_names_the_file_line_and_field(
    tmp_path: Path, old: str, new: str, error: str
) -> None:
    """Every malformed part is an error with the file, the line and the field."""
    assert old in SUITE
    path = write(tmp_path, SUITE.replace(old, new, 1))
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    assert str(caught.value).startswith(str(path))
    assert error in str(caught.value)


def test_record_proposes_the_next_version_field_by_field(tmp_path: Path) -> None:
    """A failing case's closest answer changes as little as needed; passing cases and runs
    that did not finish are kept; the proposal is version 2 beside version 1."""
    suite = load_suite(write(tmp_path, SUITE))
    proposal = propose(
        suite,
        [
            done({"intent": "lost_card", "route": {"team": "cards"}}),
            ranged(0.2, "cards", "Please freeze"),
            RunOutput("dead", None, "boom", 0.1),
        ],
    )  # fmt: skip
    assert proposal.changes == (
        "exact: route.team: 'security' -> 'cards' (output 'cards')",
        "ranges: confidence: {'min': 0.5, 'max': 1.0} -> {'min': 0.2, 'max': 1.0} (output 0.2)",
        "either: the run ended dead (boom); kept as is",
    )
    assert proposal.kept == 1
    assert proposal.path == tmp_path / "tickets.v2.yaml"
    proposal.path.write_text(proposal.text)
    again = load_suite(proposal.path)
    assert again.version == 2
    assert len(again.cases[2].answers) == 2
    outputs = [
        done({"intent": "lost_card", "route": {"team": "cards"}}),
        ranged(0.2, "cards", "Please freeze"),
        done({"intent": "extra_charge", "route": {"team": "payments"}}),
    ]  # fmt: skip
    assert all(r.passed for r in judge(again, outputs))


def test_a_jsonl_suite_is_a_header_line_then_one_case_a_line(tmp_path: Path) -> None:
    """The same suite as JSON lines loads to the same cases and verdicts; its errors name the
    case's line; record proposes the next version as JSON lines too."""
    content = yaml.safe_load(SUITE)
    header = {k: v for k, v in content.items() if k != "cases"}
    rows = [header, *content["cases"]]
    path = tmp_path / "tickets.v1.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    suite = load_suite(path)
    assert [c.name for c in suite.cases] == ["exact", "ranges", "either"]
    assert [c.line for c in suite.cases] == [2, 3, 4]
    results = judge(suite, [done({"intent": "lost_card", "route": {"team": "cards"}})] * 3)
    assert results[0].message == "exact (line 2): route.team: expected 'security', got 'cards'"
    proposal = propose(suite, [done({"intent": "lost_card", "route": {"team": "security"}})] * 3)
    assert proposal.path.name == "tickets.v2.jsonl"
    proposal.path.write_text(proposal.text)
    assert load_suite(proposal.path).version == 2

    rows[2] = {**rows[2], "inptu": {}}
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    with pytest.raises(SuiteError, match=r"tickets.v1.jsonl:3: cases\[1\].inptu: unknown key"):
        load_suite(path)
    path.write_text(json.dumps(header) + "\n{not json\n")
    with pytest.raises(SuiteError, match=r"tickets.v1.jsonl:2: invalid JSON"):
        load_suite(path)
