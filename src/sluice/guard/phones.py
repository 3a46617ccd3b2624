"""Phone numbers in national and international formats, without a numbering-plan database.

Accepted shapes (groups separated by one space, dash or dot, or none):

- international: ``+`` or ``00``, a country code and 8-15 digits in all (E.164), with an
  optional UK-style ``(0)``: ``+44 (0)20 7946 0958``, ``0049 30 1234567``, ``+14155552671``;
- national with a trunk ``0``: 9-12 digits (UK, FR, DE, IE, AU, ...): ``020 7946 0958``,
  ``01 23 45 67 89``, ``0151 12345678``;
- North American: 10 digits written in the 3-3-4 shape, optionally after a trunk ``1`` and
  with the area code in brackets: ``(415) 555-2671``, ``1-800-555-0199``. The shape is enough:
  an area or exchange code that is not assigned (starting 0 or 1, ``(123) 456-7890``,
  ``555 123 4567``) is still masked, since a number written like a phone is most likely one
  (a typo, a test number, a foreign plan) and leaking it costs more than masking a non-phone.
  Ten digits run together (``4155552671``) need assignable area and exchange codes (2-9);
  ten-digit mobile numbers of other plans (e.g. India ``98765 43210``) are taken too.

Numbers right after reference words (``order``, ``ref``, ``invoice``, ...) or a currency are not
phones. A pattern that ran on into a short following number (``call 0161 496 0000 2 times``) is cut
back to the last valid group.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sluice.guard.recognizers import PatternRecognizer, PiiType, has_digit, is_reference

# Written first-character first: "+", "(" or a digit, outside a word; then, by that character,
# the alternatives the optional prefix and area code allow, in the order a backtracking match
# of "(?<![\w+.-])(?:(?:\+|00)CC)?(?:\(AREA\))?\d{1,5}..." tries them. A pattern that opens
# with a class lets the engine skip ahead to candidates (3.4 -> 1.9 µs a ticket).
_CC = r"\d{1,3}[ .-]?(?:\(0\)[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{1,5}"
_PHONE = re.compile(
    r"[+(\d](?<![\w+.-][+(\d])"
    rf"(?:(?<=\+){_CC}|(?<=\()\d{{1,5}}\)[ .-]?\d{{1,5}}|(?<=0)0{_CC}|(?<=\d)\d{{0,4}})"
    r"(?:[ .-]?\d{1,5}){0,6}"
    r"(?![\w])"
)
_GROUP = re.compile(r"\d+")
_E164_MIN, _E164_MAX = 8, 15


def _nanp(digits: str) -> bool:
    """Ten digits whose area and exchange codes start with 2-9."""
    return len(digits) == 10 and digits[0] in "23456789" and digits[3] in "23456789"


def phone_groups_valid(groups: Sequence[str], *, international: bool) -> bool:
    """Whether digit groups as written (country code first, if any) form a plausible number."""
    digits = "".join(groups)
    # A lone digit after the first group is a count ("2 times"), not part of the number;
    # abroad, the group after the country code may be a one-digit prefix (+33 6 .., +61 2 ..).
    if any(len(group) < 2 for group in groups[2 if international else 1 :]):
        return False
    if international:
        return _E164_MIN <= len(digits) <= _E164_MAX
    if digits[0] == "0":
        return 9 <= len(digits) <= 12
    # Without a trunk 0 only the North American 3-3-4 and the Indian mobile 5-5 shapes are
    # taken: other ten-digit groupings (sort code + account, amounts) are not phones. Written
    # in the 3-3-4 shape (after a trunk 1 or not), any codes do; run together, valid ones only.
    shape = tuple(len(group) for group in groups)
    if shape in ((3, 3, 4), (1, 3, 3, 4)):
        return shape == (3, 3, 4) or digits[0] == "1"
    if digits[0] == "1":
        return shape == (11,) and _nanp(digits[1:])
    if shape == (5, 5):
        return digits[0] in "6789"
    return shape in ((10,), (3, 3, 4)) and _nanp(digits)


def _validate_phone(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    raw = match.group()
    international = raw[0] == "+" or raw.startswith("00")
    spans = [
        (m.start(), m.end())
        for m in _GROUP.finditer(raw)
        # The UK "(0)" trunk marker is written but not dialled from abroad.
        if not (international and raw[m.start() - 1 : m.end() + 1] == "(0)")
    ]
    values = [raw[start:end] for start, end in spans]
    if international and raw.startswith("00"):
        values[0] = values[0][2:]
    if not values[0]:
        values = values[1:]
        spans = spans[1:]
    count = len(values)
    while count:
        if phone_groups_valid(values[:count], international=international):
            # A number written with "+" is dialled, never a reference of ours; "00" may start
            # a zero-padded reference number.
            if raw[0] != "+" and is_reference(text, match.start()):
                return None
            return match.start(), match.start() + spans[count - 1][1]
        # The last group is cut off only when it is short (a count, a day) or set apart by
        # another separator than the groups before it ("555-234-5678 45 EUR"); cutting any
        # long group would find a "phone" inside every long number.
        last_sep = raw[spans[count - 2][1] : spans[count - 1][0]] if count >= 2 else ""
        prev_sep = raw[spans[count - 3][1] : spans[count - 2][0]] if count >= 3 else last_sep
        if len(values[count - 1]) > 2 and last_sep == prev_sep:
            return None
        count -= 1
    return None


def phone_recognizer() -> PatternRecognizer:
    """Phone numbers in the national and international shapes listed in the module docstring."""
    return PatternRecognizer(PiiType.PHONE, _PHONE, _validate_phone, has_digit)
