"""Golden suites: versioned files of inputs and the structured outputs expected of them.

A suite lives in ``APP_DIR/tests/golden/NAME.vN.yaml`` (or ``.jsonl``: a header line, then
one case a line; see :func:`load_jsonl`); the gate runs the highest ``N`` (older versions
stay for comparison, ``sluice test record`` proposes the next one)::

    suite: triage
    version: 1
    workflow: triage               # the workflow every input goes through
    output_schema: {...}           # optional: JSON Schema every output must match
    cases:
      - name: lost-card-1
        input: {text: "I lost my card"}
        expect:                    # field (dotted path) -> assertion, all must hold
          intent: lost_or_stolen_card                    # exact value
          route.team: {one_of: [security, cards]}        # one of a set
          confidence: {min: 0.5, max: 1.0}               # numeric range
          draft.reply: {pattern: "card"}                 # regular expression (search)
          route: {equals: {team: security, priority: urgent, queue: "security:urgent"}}
      - name: charge-or-fee
        input: {text: "Why was I charged extra?"}
        expect:                    # a list: several acceptable answers, any one may hold
          - {intent: extra_charge_on_statement}
          - {intent: card_payment_fee_charged}

A case passes when its run is ``done``, its output matches ``output_schema`` and one of its
acceptable answers holds; the failure message names the case, the field, what was expected
and what came out. A malformed file is a :class:`~sluice.suites.yamlfile.SuiteError` naming
the file, line and field.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import yaml

from sluice.config import did_you_mean
from sluice.suites.gate import Gate, GateSpec
from sluice.suites.manifest import check_keys
from sluice.suites.results import CaseResult
from sluice.suites.target import DEFAULT_IN_FLIGHT, RunOutput, Target
from sluice.suites.yamlfile import LineList, LineMap, SuiteError, load_yaml, unknown, where

GOLDEN_DIR = "golden"
_FILE = re.compile(r"^(?P<name>[A-Za-z0-9_-]+)\.v(?P<version>[0-9]+)\.(?:ya?ml|jsonl)$")
#: The operators of an assertion mapping; any other mapping key is an error.
OPERATORS = ("equals", "one_of", "min", "max", "pattern")
_SUITE_KEYS = ("suite", "version", "workflow", "description", "output_schema", "cases")
_CASE_KEYS = ("name", "input", "expect", "note")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Assertion:
    """What one field of the output must be; unset parts (``_MISSING``/None) are not checked."""

    field: str
    equals: Any = _MISSING
    one_of: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: re.Pattern[str] | None = None

    def check(self, output: Mapping[str, Any]) -> str | None:
        """None when the output's field holds, else why not (``field: expected ..., got ...``)."""
        value = field_value(output, self.field)
        if value is _MISSING:
            return f"{self.field}: missing from the output"
        if self.equals is not _MISSING and value != self.equals:
            return f"{self.field}: expected {self.equals!r}, got {value!r}"
        if self.one_of is not None and value not in self.one_of:
            return f"{self.field}: expected one of {list(self.one_of)!r}, got {value!r}"
        if self.minimum is not None or self.maximum is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                return f"{self.field}: expected a number, got {value!r}"
            if self.minimum is not None and value < self.minimum:
                return f"{self.field}: expected >= {self.minimum}, got {value!r}"
            if self.maximum is not None and value > self.maximum:
                return f"{self.field}: expected <= {self.maximum}, got {value!r}"
        if self.pattern is not None:
            if not isinstance(value, str):
                wanted = f"a string matching {self.pattern.pattern!r}"
                return f"{self.field}: expected {wanted}, got {value!r}"
            if self.pattern.search(value) is None:
                return f"{self.field}: {value!r} does not match {self.pattern.pattern!r}"
        return None

    def spec(self) -> Any:
        """The assertion as it is written in a suite file."""
        ops: dict[str, Any] = {}
        if self.equals is not _MISSING:
            if isinstance(self.equals, dict):
                ops["equals"] = self.equals
            else:
                return self.equals
        if self.one_of is not None:
            ops["one_of"] = list(self.one_of)
        if self.minimum is not None:
            ops["min"] = self.minimum
        if self.maximum is not None:
            ops["max"] = self.maximum
        if self.pattern is not None:
            ops["pattern"] = self.pattern.pattern
        return ops


@dataclass(frozen=True, slots=True)
class GoldenCase:
    """One input and its acceptable answers (each a list of assertions that must all hold)."""

    name: str
    input: Any
    answers: tuple[tuple[Assertion, ...], ...]
    line: int
    note: str | None = None
    expect: Any = None  # the ``expect`` as written, kept for the next version

    def check(self, output: Mapping[str, Any]) -> list[str]:
        """``[]`` when one answer holds, else the problems of the closest answer."""
        best: list[str] | None = None
        for answer in self.answers:
            problems = [p for a in answer if (p := a.check(output)) is not None]
            if not problems:
                return []
            if best is None or len(problems) < len(best):
                best = problems
        return best or []


@dataclass(frozen=True, slots=True)
class GoldenSuite:
    """A parsed suite file."""

    name: str
    version: int
    workflow: str
    cases: tuple[GoldenCase, ...]
    path: Path
    output_schema: Mapping[str, Any] | None = None
    description: str | None = None


def field_value(output: Any, path: str) -> Any:
    """The value at dotted ``path`` (``route.team``, ``similar_tickets.0``) or ``_MISSING``."""
    value = output
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _plain(value: Any) -> Any:
    """``value`` with LineMap/LineList turned into dict/list (for equality and dumping)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_assertion(field: str, raw: Any, problem: Callable[[str, str], SuiteError]) -> Assertion:
    """One ``field: assertion`` of an ``expect`` mapping; ``problem(field, message)``."""
    if not isinstance(raw, Mapping):
        return Assertion(field, equals=_plain(raw))
    unknown = [k for k in raw if k not in OPERATORS]
    if unknown:
        key = str(unknown[0])
        raise problem(
            f"{field}.{key}",
            f"unknown assertion{did_you_mean(key, OPERATORS)} (one of {', '.join(OPERATORS)};"
            " to expect a whole mapping, write {equals: {...}})",
        )
    if not raw:
        raise problem(field, f"an empty assertion (give one of {', '.join(OPERATORS)})")
    one_of = raw.get("one_of")
    if one_of is not None and (not isinstance(one_of, list) or not one_of):
        raise problem(f"{field}.one_of", "must be a non-empty list of values")
    bounds = {}
    for key in ("min", "max"):
        if key in raw:
            if not _number(raw[key]):
                raise problem(f"{field}.{key}", f"must be a number, got {raw[key]!r}")
            bounds[key] = float(raw[key])
    if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
        raise problem(field, f"min {bounds['min']} is above max {bounds['max']}")
    pattern = None
    if "pattern" in raw:
        if not isinstance(raw["pattern"], str):
            raise problem(f"{field}.pattern", "must be a regular expression string")
        try:
            pattern = re.compile(raw["pattern"])
        except re.error as exc:
            raise problem(f"{field}.pattern", f"invalid regular expression: {exc}") from None
    return Assertion(
        field,
        equals=_plain(raw["equals"]) if "equals" in raw else _MISSING,
        one_of=None if one_of is None else tuple(_plain(one_of)),
        minimum=bounds.get("min"),
        maximum=bounds.get("max"),
        pattern=pattern,
    )


def load_suite(path: Path) -> GoldenSuite:
    """Parse and check one suite file (every error names the file, line and field)."""
    raw = load_jsonl(path) if path.suffix == ".jsonl" else load_yaml(path)
    if not isinstance(raw, LineMap):
        raise SuiteError(f"{path}:1: a golden suite must be a mapping ({', '.join(_SUITE_KEYS)})")

    def at(line: int, field: str, message: str) -> SuiteError:
        return SuiteError(f"{where(path, line, field)}: {message}")

    for key in raw:
        if key not in _SUITE_KEYS:
            raise at(raw.line_of(key), str(key), unknown(key, _SUITE_KEYS))
    for key in ("suite", "version", "workflow", "cases"):
        if key not in raw:
            raise at(raw.line, key, "missing")
    name, version, workflow = raw["suite"], raw["version"], raw["workflow"]
    if not isinstance(name, str) or not name:
        raise at(raw.line_of("suite"), "suite", "must be a non-empty name")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise at(raw.line_of("version"), "version", f"must be a positive integer, got {version!r}")
    matched = _FILE.match(path.name)
    if matched and (matched["name"], int(matched["version"])) != (name, version):
        raise at(
            raw.line_of("suite"),
            "suite",
            f"the file name says {matched['name']} v{matched['version']},"
            f" the file says {name} v{version}",
        )
    if not isinstance(workflow, str) or not workflow:
        raise at(raw.line_of("workflow"), "workflow", "must be a workflow name")
    schema = raw.get("output_schema")
    if schema is not None:
        if not isinstance(schema, Mapping):
            raise at(raw.line_of("output_schema"), "output_schema", "must be a JSON Schema object")
        schema = _plain(schema)
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            loc = ".".join(str(p) for p in exc.absolute_path)
            field = "output_schema" + (f".{loc}" if loc else "")
            raise at(
                raw.line_of("output_schema"), field, f"invalid schema: {exc.message}"
            ) from None
    cases_raw = raw["cases"]
    if not isinstance(cases_raw, LineList) or not cases_raw:
        raise at(raw.line_of("cases"), "cases", "must be a non-empty list of cases")
    cases: list[GoldenCase] = []
    seen: dict[str, int] = {}
    for index, case in enumerate(cases_raw):
        line = cases_raw.line_of(index)
        prefix = f"cases[{index}]"
        if not isinstance(case, LineMap):
            raise at(line, prefix, "must be a mapping with name, input and expect")
        for key in case:
            if key not in _CASE_KEYS:
                raise at(
                    case.line_of(key),
                    f"{prefix}.{key}",
                    unknown(key, _CASE_KEYS),
                )
        for key in ("name", "input", "expect"):
            if key not in case:
                raise at(line, f"{prefix}.{key}", "missing")
        case_name = case["name"]
        if not isinstance(case_name, str) or not case_name:
            raise at(case.line_of("name"), f"{prefix}.name", "must be a non-empty string")
        if case_name in seen:
            raise at(
                case.line_of("name"),
                f"{prefix}.name",
                f"duplicate case name {case_name!r} (first at line {seen[case_name]})",
            )
        seen[case_name] = case.line_of("name")
        cases.append(_parse_case(path, prefix, case, at))
    return GoldenSuite(
        name=name,
        version=version,
        workflow=workflow,
        cases=tuple(cases),
        path=path,
        output_schema=schema,
        description=raw.get("description"),
    )


def _parse_case(
    path: Path, prefix: str, case: LineMap, at: Callable[[int, str, str], SuiteError]
) -> GoldenCase:
    expect = case["expect"]
    answers_raw: list[tuple[LineMap, str]]
    if isinstance(expect, LineList):
        if not expect:
            raise at(case.line_of("expect"), f"{prefix}.expect", "an empty list of answers")
        answers_raw = []
        for i, item in enumerate(expect):
            if not isinstance(item, LineMap) or not item:
                raise at(
                    expect.line_of(i),
                    f"{prefix}.expect[{i}]",
                    "each acceptable answer must be a non-empty mapping of field to assertion",
                )
            answers_raw.append((item, f"{prefix}.expect[{i}]"))
    elif isinstance(expect, LineMap) and expect:
        answers_raw = [(expect, f"{prefix}.expect")]
    else:
        raise at(
            case.line_of("expect"),
            f"{prefix}.expect",
            "must be a mapping of field to assertion, or a list of them (acceptable answers)",
        )
    answers = []
    for answer, where_ in answers_raw:

        def problem(
            field: str, message: str, answer: LineMap = answer, w: str = where_
        ) -> SuiteError:
            # The key is a dotted path itself (``route.team``): the line of the longest match.
            keys = [k for k in answer if field == k or field.startswith(f"{k}.")]
            line = answer.line_of(max(keys, key=len)) if keys else answer.line
            return at(line, f"{w}.{field}", message)

        answers.append(tuple(parse_assertion(str(f), answer[f], problem) for f in answer))
    note = case.get("note")
    return GoldenCase(
        name=case["name"],
        input=_plain(case["input"]),
        answers=tuple(answers),
        line=case.line,
        note=None if note is None else str(note),
        expect=_plain(expect),
    )


def suite_versions(tests_dir: Path, name: str) -> list[tuple[int, Path]]:
    """The files of suite ``name`` as (version, path), lowest version first."""
    folder = tests_dir / GOLDEN_DIR
    found = []
    for path in folder.glob(f"{name}.v*.*") if folder.is_dir() else ():
        matched = _FILE.match(path.name)
        if matched and matched["name"] == name:
            found.append((int(matched["version"]), path))
    return sorted(found)


def latest_suite(tests_dir: Path, name: str) -> GoldenSuite:
    """The highest version of suite ``name``."""
    versions = suite_versions(tests_dir, name)
    if not versions:
        raise SuiteError(f"{tests_dir / GOLDEN_DIR}: no file {name}.v<N>.yaml for suite {name!r}")
    return load_suite(versions[-1][1])


def judge(
    suite: GoldenSuite, outputs: Sequence[RunOutput], gate: str = "golden"
) -> list[CaseResult]:
    """One result per case of ``suite`` from its runs' ``outputs`` (in case order)."""
    validator = (
        None
        if suite.output_schema is None
        else jsonschema.Draft202012Validator(suite.output_schema)
    )
    label = f"{suite.name}.v{suite.version}"
    results = []
    for case, out in zip(suite.cases, outputs, strict=True):
        figures: dict[str, float | str] = {"line": case.line, "status": out.status}
        if out.status != "done" or out.result is None:
            problems = [f"the run ended {out.status}: {out.error}"]
        else:
            problems = []
            if validator is not None:
                problems += [
                    f"output_schema: {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                    for e in sorted(validator.iter_errors(out.result), key=str)[:3]
                ]
            problems += case.check(out.result)
            for answer in case.answers[:1]:
                for assertion in answer:
                    got = field_value(out.result, assertion.field)
                    if isinstance(got, str | int | float) and not isinstance(got, bool):
                        figures[assertion.field] = got
        message = (
            f"{case.name} (line {case.line}): " + "; ".join(problems)
            if problems
            else f"{case.name}: {sum(len(a) for a in case.answers[:1])} fields as expected"
        )
        results.append(
            CaseResult(
                gate=gate,
                suite=label,
                name=case.name,
                passed=not problems,
                message=message,
                seconds=out.seconds,
                figures=figures,
            )
        )
    return results


@dataclass(frozen=True, slots=True)
class GoldenGate:
    """The ``golden`` gate: runs each named suite's newest version through its workflow."""

    suites: tuple[str, ...]
    tests_dir: Path
    in_flight: int
    name: str = "golden"

    def run(self, target: Target) -> list[CaseResult]:
        """Load every suite first (so a malformed one fails before any run), then run them."""
        loaded = [latest_suite(self.tests_dir, name) for name in self.suites]
        results: list[CaseResult] = []
        for suite in loaded:
            outputs = target.run_inputs(
                suite.workflow, [c.input for c in suite.cases], in_flight=self.in_flight
            )
            results.extend(judge(suite, outputs, self.name))
        return results


def golden_gate(spec: GateSpec) -> Gate:
    """Build the golden gate from ``golden: {suites: [...], in_flight: N}``."""
    check_keys(spec, ("suites", "in_flight"), required=("suites",))
    in_flight = spec.options.get("in_flight", DEFAULT_IN_FLIGHT)
    if not isinstance(in_flight, int) or isinstance(in_flight, bool) or not 1 <= in_flight <= 256:
        raise spec.problem("in_flight", f"must be an integer in 1..256, got {in_flight!r}")
    return GoldenGate(tuple(spec.names("suites")), spec.tests_dir, in_flight, spec.name)


def reply_pattern(text: str) -> str:
    """A pattern matching text that starts with ``text`` (spaces left unescaped to read)."""
    return "^" + re.escape(text).replace("\\ ", " ")


def dump_suite(content: Mapping[str, Any], header: str = "") -> str:
    """A suite file's text: ``header`` (comment lines), then ``content`` in its order, each
    case's values in flow style so that a case reads in a few lines."""
    return header + yaml.safe_dump(
        dict(content), sort_keys=False, width=100, allow_unicode=True, default_flow_style=None
    )


def _relaxed(assertion: Assertion, got: Any) -> Assertion:
    """``assertion`` changed as little as needed to accept ``got``."""
    if assertion.equals is not _MISSING or assertion.pattern is not None:
        return Assertion(assertion.field, equals=got)
    if assertion.one_of is not None:
        return dataclasses.replace(assertion, one_of=(*assertion.one_of, got))
    if _number(got):
        low = assertion.minimum if assertion.minimum is None else min(assertion.minimum, got)
        high = assertion.maximum if assertion.maximum is None else max(assertion.maximum, got)
        return dataclasses.replace(assertion, minimum=low, maximum=high)
    return Assertion(assertion.field, equals=got)


def _show(value: Any) -> str:
    return "(missing)" if value is _MISSING else repr(value)


@dataclass(frozen=True, slots=True)
class Proposal:
    """The next version of a suite, from current outputs: its file text, where it goes, and
    the changes field by field (``case: field: old -> new``)."""

    path: Path
    text: str
    changes: tuple[str, ...]
    kept: int


def propose(suite: GoldenSuite, outputs: Sequence[RunOutput]) -> Proposal:
    """Version ``suite.version + 1`` of ``suite``: each failing case's closest answer changed
    to accept its current output; passing cases and runs that did not finish are kept."""
    cases: list[dict[str, Any]] = []
    changes: list[str] = []
    kept = 0
    for case, out in zip(suite.cases, outputs, strict=True):
        entry: dict[str, Any] = {"name": case.name, "input": case.input, "expect": case.expect}
        if case.note is not None:
            entry["note"] = case.note
        cases.append(entry)
        if out.status != "done" or out.result is None:
            changes.append(f"{case.name}: the run ended {out.status} ({out.error}); kept as is")
            kept += 1
            continue
        if not case.check(out.result):
            kept += 1
            continue
        scored = [
            (sum(a.check(out.result) is not None for a in answer), i)
            for i, answer in enumerate(case.answers)
        ]
        _, closest = min(scored)
        answer = []
        for assertion in case.answers[closest]:
            if assertion.check(out.result) is None:
                answer.append(assertion)
                continue
            got = field_value(out.result, assertion.field)
            new = _relaxed(assertion, None if got is _MISSING else got)
            changes.append(
                f"{case.name}: {assertion.field}: {_show(assertion.spec())} -> {_show(new.spec())}"
                f" (output {_show(got)})"
            )
            answer.append(new)
        spec = {a.field: a.spec() for a in answer}
        if len(case.answers) == 1:
            entry["expect"] = spec
        else:
            entry["expect"] = [
                spec if i == closest else {a.field: a.spec() for a in other}
                for i, other in enumerate(case.answers)
            ]
    content: dict[str, Any] = {
        "suite": suite.name,
        "version": suite.version + 1,
        "workflow": suite.workflow,
    }
    if suite.description is not None:
        content["description"] = suite.description
    if suite.output_schema is not None:
        content["output_schema"] = suite.output_schema
    content["cases"] = cases
    header = (
        f"# Golden suite {suite.name}, version {suite.version + 1}: proposed by"
        f" `sluice test record` from version {suite.version}.\n"
    )
    path = suite.path.with_name(f"{suite.name}.v{suite.version + 1}{suite.path.suffix}")
    if path.suffix == ".jsonl":
        return Proposal(path, dump_jsonl(content), tuple(changes), kept)
    return Proposal(path, dump_suite(content, header), tuple(changes), kept)


def _located(value: Any, line: int) -> Any:
    """``value`` as :func:`load_yaml` gives it, every part on ``line``."""
    if isinstance(value, dict):
        mapping = LineMap()
        mapping.line = line
        for key, item in value.items():
            mapping[key] = _located(item, line)
            mapping.key_lines[key] = line
        return mapping
    if isinstance(value, list):
        sequence = LineList()
        sequence.line = line
        for item in value:
            sequence.append(_located(item, line))
            sequence.item_lines.append(line)
        return sequence
    return value


def load_jsonl(path: Path) -> LineMap:
    """A suite as JSON lines: the first line is the suite's header (``suite``, ``version``,
    ``workflow``, ``output_schema``...), each further line one case; blank lines are skipped.
    Returned as :func:`load_yaml` returns a YAML suite, with each case's line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read: {exc.strerror or exc}") from None
    header: LineMap | None = None
    cases = LineList()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise SuiteError(f"{path}:{number}: invalid JSON: {exc}") from None
        if not isinstance(value, dict):
            what = "the suite's header" if header is None else "a case"
            raise SuiteError(f"{path}:{number}: {what} must be a JSON object")
        if header is None:
            header = _located(value, number)
            if "cases" in header:
                raise SuiteError(f"{path}:{number}: cases: one case a line after the header")
            continue
        cases.append(_located(value, number))
        cases.item_lines.append(number)
    if header is None:
        raise SuiteError(f"{path}:1: empty: the first line is the suite's header")
    cases.line = cases.item_lines[0] if cases.item_lines else header.line
    header["cases"] = cases
    header.key_lines["cases"] = cases.line
    return header


def dump_jsonl(content: Mapping[str, Any]) -> str:
    """A suite as JSON lines: its header, then one case a line."""
    head = {k: v for k, v in content.items() if k != "cases"}
    rows = [head, *content.get("cases", [])]
    return "".join(orjson.dumps(row).decode() + "\n" for row in rows)
