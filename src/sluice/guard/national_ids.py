"""National identity numbers: US Social Security numbers and UK National Insurance numbers.

These two are the ones recognized; other countries' ids (e.g. the Dutch BSN, the French NIR)
are not, and pass unmasked.
"""

from __future__ import annotations

import re

from sluice.guard.recognizers import CONTEXT_WINDOW, PatternRecognizer, PiiType, has_digit


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """Whether the parts of a US Social Security number are in ranges the SSA ever issues."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})


# The look-behind after the first digit lets the engine skip to digits (see the card pattern).
_SSN = re.compile(r"(\d(?<![\w-]\d)\d\d)([- ]?)(\d{2})\2(\d{4})(?![\w]|-\d)")
_SSN_CONTEXT = re.compile(
    r"\b(?:ssn|social security(?: number| no\.?)?|ss#)(?:\W+(?:is|number|no\.?|#))?\W{0,3}$",
    re.IGNORECASE,
)


def _validate_ssn(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    if not ssn_valid(match.group(1), match.group(3), match.group(4)):
        return None
    # Nine bare digits are an SSN only when the text says so.
    if not match.group(2):
        before = text[max(0, match.start() - CONTEXT_WINDOW) : match.start()]
        if not _SSN_CONTEXT.search(before):
            return None
    return match.span()


# UK National Insurance number: two prefix letters (D, F, I, Q, U, V never used; O not second),
# six digits, suffix A-D; optionally spaced in pairs.
_NINO = re.compile(
    r"(?<![A-Za-z0-9])[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])",
    re.IGNORECASE,
)


def _validate_nino(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    return None if match.group()[:2].upper() in _NINO_BAD_PREFIXES else match.span()


def us_ssn_recognizer() -> PatternRecognizer:
    """US Social Security numbers: dashed or spaced anywhere, nine bare digits only after "SSN"."""
    return PatternRecognizer(PiiType.US_SSN, _SSN, _validate_ssn, has_digit)


def uk_nino_recognizer() -> PatternRecognizer:
    """UK National Insurance numbers (``QQ 12 34 56 C`` shape, excluded prefixes rejected)."""
    return PatternRecognizer(PiiType.UK_NINO, _NINO, _validate_nino, has_digit)
