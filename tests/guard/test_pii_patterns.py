"""The recognizers' patterns, rewritten to open with a character class, match as they did.

A pattern that opens with a look-behind is tried by the regular-expression engine at every
position of a text; one that opens with a class lets it skip ahead to candidates. The patterns
were rewritten for that (the look-behind moved behind the first character); the reference
patterns below are the original, readable forms, and every span and group must agree.
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.guard import ip_addresses as ips
from sluice.guard import national_ids, phones, recognizers

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
REFERENCE = {
    "card": (
        recognizers._CARD,
        r"(?<![\w-])(?:\d{4}([ -]?)\d{4}\1\d{4}\1\d{4}|\d{4}([ -]?)\d{6}\2\d{4,5}|\d{12,19})"
        r"(?![\w]|-\d)",
    ),
    "iban": (recognizers._IBAN, r"(?<![A-Za-z0-9])(?=([A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){11,30}))"),
    "ssn": (national_ids._SSN, r"(?<![\w-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\w]|-\d)"),
    "ipv4": (ips._IPV4, rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)"),
    "phone": (
        phones._PHONE,
        r"(?<![\w+.-])(?:(?:\+|00)\d{1,3}[ .-]?(?:\(0\)[ .-]?)?)?(?:\(\d{1,5}\)[ .-]?)?"
        r"\d{1,5}(?:[ .-]?\d{1,5}){0,6}(?![\w])",
    ),
}
# Characters the patterns care about, digits weighted up so that numbers form.
ALPHABET = "0123456789" * 3 + " -.+()_:\naZAB@/#$"


def _spans(pattern: re.Pattern[str], text: str) -> list[tuple[tuple[int, int], ...]]:
    return [
        tuple(match.span(group) for group in range(pattern.groups + 1))
        for match in pattern.finditer(text)
    ]


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_rewritten_pattern_matches_as_the_reference(name: str) -> None:
    """Seeded random texts dense in digits and separators: the same spans and groups."""
    pattern, reference_source = REFERENCE[name]
    reference = re.compile(reference_source)
    assert pattern.pattern != reference.pattern  # the rewrite is in place
    rng = random.Random(12)
    texts = ["".join(rng.choices(ALPHABET, k=rng.randint(0, 40))) for _ in range(20_000)]
    texts += ["+44 (0)20 7946 0958", "0049 30 1234567", "(415) 555-2671", "ref 4111 1111 1111 1111"]
    texts += ["GB82 WEST 1234 5698 7654 32", "ip 192.168.0.1.", "x-250.1.1.1", "078-05-1120"]
    mismatched = [text for text in texts if _spans(pattern, text) != _spans(reference, text)]
    assert mismatched == []


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40), st.sampled_from(sorted(REFERENCE)))
def test_rewritten_pattern_property(text: str, name: str) -> None:
    """The same agreement on texts hypothesis picks (and shrinks, should one ever differ)."""
    pattern, reference_source = REFERENCE[name]
    assert _spans(pattern, text) == _spans(re.compile(reference_source), text)
