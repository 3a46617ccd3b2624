"""The masker: placeholders, offsets, sessions across fields, configuration, extra recognizers."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.errors import ConfigError
from sluice.guard import Entity, MaskResult, PiiMasker, PiiType

MASKER = PiiMasker()


class TestPlaceholders:
    """Stable, numbered placeholders."""

    def test_same_value_same_placeholder(self) -> None:
        """A repeated value, even spelt differently, gets one placeholder; others get the next."""
        text = "mail Jo@X.io, jo@x.io or al@x.io; card 4111 1111 1111 1111 = 4111111111111111"
        result = MASKER.mask(text)
        assert result.masked == ("mail <EMAIL_1>, <EMAIL_1> or <EMAIL_2>; card <CARD_1> = <CARD_1>")

    def test_numbering_is_per_type(self) -> None:
        """Each type counts from 1."""
        result = MASKER.mask("a@b.io from 10.0.0.1 and c@d.io")
        assert result.masked == "<EMAIL_1> from <IP_ADDRESS_1> and <EMAIL_2>"

    def test_each_mask_call_starts_again(self) -> None:
        """Two separate texts are two separate numberings."""
        assert MASKER.mask("a@b.io").masked == MASKER.mask("c@d.io").masked == "<EMAIL_1>"

    def test_text_without_pii_is_returned_as_is(self) -> None:
        """No PII: the same string and no entities."""
        text = "Where is my card?"
        assert MASKER.mask(text) == MaskResult(text, [])


class TestOffsets:
    """Entities index the input text."""

    def test_offsets_point_at_values(self) -> None:
        """Each entity's span in the input is the value that was replaced."""
        text = "I'm at +44 20 7946 0958 or jo@x.io, NI AB123456C"
        result = MASKER.mask(text)
        assert [text[e.start : e.end] for e in result.entities] == [
            "+44 20 7946 0958",
            "jo@x.io",
            "AB123456C",
        ]
        assert result.entities[0] == Entity(PiiType.PHONE, 7, 23)

    def test_entities_are_ordered_and_disjoint(self) -> None:
        """Entities come in order of position and never overlap."""
        text = "DE89370400440532013000 4111111111111111 123-45-6789 192.168.0.1"
        entities = MASKER.mask(text).entities
        assert [e.type for e in entities] == [
            PiiType.IBAN,
            PiiType.CARD,
            PiiType.US_SSN,
            PiiType.IP_ADDRESS,
        ]
        assert all(a.end <= b.start for a, b in itertools.pairwise(entities))


class TestSessions:
    """One event's fields share placeholders."""

    def test_mask_fields_shares_placeholders(self) -> None:
        """The same address in the subject and the body is one placeholder."""
        results = MASKER.mask_fields(
            {"subject": "from jo@x.io", "body": "hi, al@x.io here, cc jo@x.io"}
        )
        assert results["subject"].masked == "from <EMAIL_1>"
        assert results["body"].masked == "hi, <EMAIL_2> here, cc <EMAIL_1>"
        assert results["body"].entities[0] == Entity(PiiType.EMAIL, 4, 11)

    def test_session(self) -> None:
        """A session keeps numbering across calls."""
        session = MASKER.session()
        assert session.mask("a@b.io").masked == "<EMAIL_1>"
        assert session.mask("c@d.io and a@b.io").masked == "<EMAIL_2> and <EMAIL_1>"


class NameList:
    """A stand-in for a model-backed person-name recognizer: finds names from a fixed list."""

    pii_type = PiiType.PERSON

    def __init__(self, names: list[str]) -> None:
        self._pattern = re.compile("|".join(re.escape(name) for name in names))

    def find(self, text: str) -> list[tuple[int, int]]:
        """Spans of the listed names."""
        return [m.span() for m in self._pattern.finditer(text)]


class TestConfiguration:
    """Types and extra recognizers."""

    def test_unknown_type_is_a_config_error(self) -> None:
        """A type name that does not exist is refused with every problem listed."""
        with pytest.raises(ConfigError) as info:
            PiiMasker(["EMAIL", "PASSPORT"])
        assert "PASSPORT" in str(info.value)

    def test_person_needs_a_recognizer(self) -> None:
        """PERSON has no built-in recognizer: asking for it without one is refused."""
        with pytest.raises(ConfigError, match="no recognizer for PERSON"):
            PiiMasker(["PERSON"])

    def test_extra_recognizer(self) -> None:
        """An extra recognizer's entities are masked after the built-in ones."""
        masker = PiiMasker(["EMAIL", "PERSON"], extra=[NameList(["Ada Lovelace"])])
        result = masker.mask("Ada Lovelace (ada@x.io) wrote; Ada Lovelace again")
        assert result.masked == "<PERSON_1> (<EMAIL_1>) wrote; <PERSON_1> again"


PII_SAMPLES = st.sampled_from(
    ["jo@x.io", "+44 20 7946 0958", "4111 1111 1111 1111", "DE89370400440532013000",
     "123-45-6789", "AB123456C", "10.1.2.3", "2001:db8::1"]
)  # fmt: skip
TEXTS = st.lists(st.one_of(st.text(max_size=30), PII_SAMPLES), max_size=6).map(" ".join)


_PLACEHOLDER = re.compile(r"<[A-Z_]+_\d+>")


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_masking_properties(text: str) -> None:
    """Never raises; offsets are valid and disjoint; no detected value survives masking.

    A detected value may still appear in the masked text only where it also appears in the
    input outside every entity, e.g. as part of a longer number that is no PII.
    """
    result = MASKER.mask(text)
    previous_end = 0
    kept: list[str] = []
    for entity in result.entities:
        assert previous_end <= entity.start < entity.end <= len(text)
        kept.append(text[previous_end : entity.start])
        previous_end = entity.end
    kept.append(text[previous_end:])
    # The masked text is the untouched segments with one placeholder between each pair.
    assert _PLACEHOLDER.split(result.masked) == kept
    outside = "\0".join(kept)
    for entity in result.entities:
        value = text[entity.start : entity.end]
        assert value not in result.masked or value in outside


class _FindsNothing:
    """A recognizer of one's own that finds nothing: it turns the built-in fast path off."""

    pii_type = PiiType.PERSON

    def find(self, text: str) -> list[tuple[int, int]]:
        return []


FULL_SCAN = PiiMasker(extra=(_FindsNothing(),))
# Built-in types written without a digit or an "@" ("::" and "cafe::beef" are IPv6).
NO_DIGIT_SAMPLES = st.sampled_from(["::", "cafe::beef", "see ::", "a:b"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=30), PII_SAMPLES, NO_DIGIT_SAMPLES), max_size=6))
def test_fast_path_finds_what_the_full_scan_finds(parts: list[str]) -> None:
    """Skipping texts without a digit, "@" or ":" never misses an entity of a built-in type."""
    text = " ".join(parts)
    assert MASKER.detect(text) == FULL_SCAN.detect(text)


def test_fast_path_keeps_ipv6_without_digits() -> None:
    """A text whose only PII has no digit is still scanned and masked."""
    assert MASKER.mask("from cafe::beef today").masked == "from <IP_ADDRESS_1> today"
    assert MASKER.detect("no personal data here at all") == []
