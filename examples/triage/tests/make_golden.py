"""Write the first version of the triage golden suite from the held-out validation split.

Run from the repository root (the models must be trained; it takes about a minute)::

    HF_HUB_OFFLINE=1 python examples/triage/tests/make_golden.py

For each intent it takes, in file order, the first ``PER_INTENT`` rows of
``data/validation.csv`` (held out from training; ``data/README.md``) that the app labels as
their gold intent, runs them through the real workflow and pins what a correct answer
produces: the intent, the route (team, priority, queue), whether the draft needs review,
and the start of the draft reply. Rows the app mislabels are left out and counted in the
suite's description: accuracy over every row is the snapshot's job (``snapshots/``). Later
versions come from ``sluice test record examples/triage --suite triage``.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from sluice.models.splits import read_examples
from sluice.suites import Target
from sluice.suites.golden import dump_suite, reply_pattern

APP = Path(__file__).resolve().parents[1]
PER_INTENT = 3
#: Candidates tried per intent: the first rows of each intent, enough to find PER_INTENT
#: that the app labels right.
CANDIDATES = 8
#: Characters of the reply pinned as a pattern: the template's opening, not every word.
REPLY_PREFIX = 40

OUTPUT_SCHEMA = {
    "type": "object",
    "required": ["text", "intent", "confidence", "escalated", "route", "draft"],
    "properties": {
        "intent": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "escalated": {"type": "boolean"},
        "route": {
            "type": "object",
            "required": ["team", "priority", "queue"],
            "properties": {"priority": {"enum": ["urgent", "normal"]}},
        },
        "draft": {
            "type": "object",
            "required": ["reply", "needs_review", "reason"],
            "properties": {"reply": {"type": "string", "minLength": 1}},
        },
    },
}


def main() -> int:
    """Run the candidates, keep the right ones, write tests/golden/triage.v1.yaml."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    for example in read_examples(APP / "data" / "validation.csv"):
        if len(by_intent[example.label]) < CANDIDATES:
            by_intent[example.label].append(example.text)
    rows = [(label, text) for label, texts in by_intent.items() for text in texts]
    target = Target.load(APP)
    outputs = target.run_inputs("triage", [{"text": text} for _, text in rows])
    cases = []
    kept: dict[str, int] = defaultdict(int)
    wrong = 0
    for (label, text), out in zip(rows, outputs, strict=True):
        if kept[label] >= PER_INTENT:
            continue
        if out.status != "done" or out.result is None:
            raise SystemExit(f"{text!r}: the run ended {out.status}: {out.error}")
        result = out.result
        if result["intent"] != label:
            wrong += 1
            continue
        kept[label] += 1
        cases.append(
            {
                "name": f"{label}-{kept[label]}",
                "input": {"text": text},
                "expect": {
                    "intent": label,
                    "route": {"equals": dict(result["route"])},
                    "draft.needs_review": result["draft"]["needs_review"],
                    "draft.reply": {
                        "pattern": reply_pattern(result["draft"]["reply"][:REPLY_PREFIX])
                    },
                },
            }
        )
    short = sorted(label for label in by_intent if kept[label] < PER_INTENT)
    if short:
        raise SystemExit(f"fewer than {PER_INTENT} right answers for: {', '.join(short)}")
    suite = {
        "suite": "triage",
        "version": 1,
        "workflow": "triage",
        "description": (
            f"{PER_INTENT} rows per intent of data/validation.csv (held out from training),"
            f" the first in file order that the app labelled right; {wrong} mislabelled rows"
            " were skipped. Written by tests/make_golden.py."
        ),
        "output_schema": OUTPUT_SCHEMA,
        "cases": cases,
    }
    path = APP / "tests" / "golden" / "triage.v1.yaml"
    path.write_text(
        dump_suite(suite, "# The triage golden suite (docs/testing.md); see its description.\n")
    )
    print(f"wrote {path}: {len(cases)} cases, {wrong} mislabelled rows skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
