"""Every ``# type: ignore`` and ``# noqa`` names what it silences and says why, on its line."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("src", "tests", "bench", "examples")

#: A suppression and what follows it in the same ``#`` segment of the comment.
DIRECTIVE = re.compile(
    r"(?:type:\s*ignore(?P<errors>\[[\w\-, ]+\])?"
    r"|noqa(?P<rules>:\s*[A-Z]+\d+(?:\s*,\s*[A-Z]+\d+)*)?)"
    r"(?P<rest>.*)",
    re.IGNORECASE,
)
#: Comment segments that are instructions to a tool, not a reason.
PRAGMA = re.compile(r"(?:type:|noqa|fmt:|pragma:|pyright:|mypy:)", re.IGNORECASE)


def unexplained(source: str) -> list[tuple[int, str]]:
    """The (line, comment) of each suppression in ``source`` that names no error code or rule,
    or gives no reason: text after it in the same comment (``# noqa: X - why``) or in the
    next ``#`` segment (``# type: ignore[x]  # why``)."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        segments = [s.strip() for s in token.string.split("#")[1:]]
        for i, segment in enumerate(segments):
            match = DIRECTIVE.match(segment)
            if match is None:
                continue
            named = match["errors"] or match["rules"]
            reason = match["rest"].strip(" -:;,()\u2014")
            if not reason and i + 1 < len(segments) and not PRAGMA.match(segments[i + 1]):
                reason = segments[i + 1]
            if not named or not re.search(r"[a-z]{3}", reason, re.IGNORECASE):
                found.append((token.start[0], token.string))
    return found


@pytest.mark.parametrize(
    ("line", "explained"),
    [
        ("x = f()  # type: ignore[arg-type]  # numpy's stubs are too narrow", True),
        ("x = f()  # noqa: BLE001 - every caller gets the error", True),
        ("x = f()  # noqa: BLE001  (tracing fails differently per version)", True),
        ("x = f()  # noqa: S301, E501 - our own file", True),
        ("x = f()  # type: ignore[arg-type]", False),
        ("x = f()  # type: ignore[arg-type]  # fmt: skip", False),
        ("x = f()  # noqa: BLE001", False),
        ("x = f()  # type: ignore  # no code named", False),
        ("x = f()  # noqa - no rule named", False),
        ("x = '# type: ignore[arg-type]'  # a string, not a comment", True),
    ],
)
def test_the_check_itself(line: str, explained: bool) -> None:
    """The check accepts a named, explained suppression and refuses the others."""
    assert (unexplained(line + "\n") == []) is explained


def test_every_suppression_is_explained() -> None:
    """No suppression in the checked trees lacks its code or its reason."""
    missing = [
        f"{path.relative_to(ROOT)}:{line}: {comment}"
        for top in CHECKED
        for path in sorted((ROOT / top).rglob("*.py"))
        for line, comment in unexplained(path.read_text())
    ]
    assert missing == []
