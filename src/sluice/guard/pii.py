"""The PII masker: finds PII with the recognizers and replaces it with stable placeholders.

Ingress masks every text field of an event before anything reaches a model, a cache or a log.
Within one text, and across the fields of one event when they are masked in one
:class:`MaskSession`, the same value always gets the same placeholder (``<EMAIL_1>``), so a
model still sees that the address in the subject and in the body is one address.

When two recognizers claim overlapping text, the one earlier in :data:`DEFAULT_TYPES` wins
(an IBAN's digits are never also a phone number). Recognizers passed as ``extra`` (e.g. a
person-name model) rank after the built-in ones.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sluice.errors import ConfigError
from sluice.guard.ip_addresses import IpRecognizer
from sluice.guard.national_ids import uk_nino_recognizer, us_ssn_recognizer
from sluice.guard.phones import phone_recognizer
from sluice.guard.recognizers import (
    PiiType,
    Recognizer,
    card_recognizer,
    email_recognizer,
    iban_recognizer,
)

# Built-in structured types, in the order that settles overlaps. No person-name recognizer is
# built in: none can be made reliable without a model, and no NER model is installed.
DEFAULT_TYPES: tuple[PiiType, ...] = (
    PiiType.EMAIL,
    PiiType.IBAN,
    PiiType.CARD,
    PiiType.IP_ADDRESS,
    PiiType.US_SSN,
    PiiType.UK_NINO,
    PiiType.PHONE,
)

_BUILT_IN: dict[PiiType, Callable[[], Recognizer]] = {
    PiiType.EMAIL: email_recognizer,
    PiiType.IBAN: iban_recognizer,
    PiiType.CARD: card_recognizer,
    PiiType.IP_ADDRESS: IpRecognizer,
    PiiType.US_SSN: us_ssn_recognizer,
    PiiType.UK_NINO: uk_nino_recognizer,
    PiiType.PHONE: phone_recognizer,
}


# Every built-in type's text holds a digit, an "@" (e-mail) or a ":" (an IPv6 address such as
# "::"): a text with none of them holds no built-in type, and one search says so (most
# tickets), where the recognizers' patterns would each scan it.
_BUILT_IN_MARK = re.compile(r"[\d@:]")


@dataclass(frozen=True, slots=True)
class Entity:
    """One piece of PII found in a text; ``start`` and ``end`` index the input text."""

    type: PiiType
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class MaskResult:
    """A masked text and the entities found in the input, in order of position."""

    masked: str
    entities: list[Entity]


def normalize(pii_type: PiiType, value: str) -> str:
    """The identity of a value for placeholder purposes: spacing and case do not matter."""
    if pii_type in (PiiType.PHONE, PiiType.CARD, PiiType.US_SSN):
        return "".join(char for char in value if char.isdigit())
    if pii_type in (PiiType.IBAN, PiiType.UK_NINO):
        return "".join(char for char in value if char.isalnum()).upper()
    if pii_type is PiiType.IP_ADDRESS:
        try:
            return ipaddress.ip_address(value).compressed
        except ValueError:
            return value
    return value.casefold()


class PiiMasker:
    """Finds and masks PII of the configured types.

    ``types`` selects built-in recognizers (default: all of :data:`DEFAULT_TYPES`); ``extra``
    adds recognizers of your own, such as a model-backed person-name recognizer. A masker holds
    only compiled patterns: it is cheap to share between tasks and threads.
    """

    def __init__(
        self,
        types: Iterable[PiiType | str] | None = None,
        *,
        extra: Sequence[Recognizer] = (),
    ) -> None:
        names = [str(t) for t in types] if types is not None else list(DEFAULT_TYPES)
        known = {t.value for t in PiiType}
        problems = [f"types: unknown PII type {name!r}" for name in names if name not in known]
        wanted = [PiiType(name) for name in names if name in known]
        extra_types = {recognizer.pii_type for recognizer in extra}
        # Asking for a type nobody can recognize would silently let it through.
        problems += [
            f"types: no recognizer for {t.value} is installed; pass one with extra=(...)"
            for t in wanted
            if t not in _BUILT_IN and t not in extra_types
        ]
        if problems:
            raise ConfigError("cannot build the PII masker", problems)
        self._recognizers: list[Recognizer] = [_BUILT_IN[t]() for t in DEFAULT_TYPES if t in wanted]
        self._recognizers.extend(extra)
        # The fast path holds only while every recognizer is a built-in one.
        self._mark = None if extra else _BUILT_IN_MARK

    @property
    def types(self) -> tuple[PiiType, ...]:
        """The types this masker finds, in overlap-priority order."""
        return tuple(recognizer.pii_type for recognizer in self._recognizers)

    def detect(self, text: str) -> list[Entity]:
        """Return the non-overlapping entities in ``text``, ordered by position."""
        if self._mark is not None and self._mark.search(text) is None:
            return []
        taken: list[tuple[int, int]] = []
        entities: list[Entity] = []
        for recognizer in self._recognizers:
            for start, end in recognizer.find(text):
                if start >= end or any(start < t_end and t_start < end for t_start, t_end in taken):
                    continue
                taken.append((start, end))
                entities.append(Entity(recognizer.pii_type, start, end))
        entities.sort(key=lambda entity: entity.start)
        return entities

    def mask(self, text: str) -> MaskResult:
        """Mask one text on its own; placeholders are numbered from 1 within it."""
        return MaskSession(self).mask(text)

    def session(self) -> MaskSession:
        """Start a session whose placeholders are stable across every text it masks."""
        return MaskSession(self)

    def mask_fields(self, fields: Mapping[str, str]) -> dict[str, MaskResult]:
        """Mask several text fields of one event with placeholders shared across the fields."""
        session = MaskSession(self)
        return {name: session.mask(text) for name, text in fields.items()}


class MaskSession:
    """Masks the texts of one event, giving each distinct value one placeholder throughout."""

    def __init__(self, masker: PiiMasker) -> None:
        self._masker = masker
        self._placeholders: dict[tuple[PiiType, str], str] = {}
        self._counts: dict[PiiType, int] = {}

    def placeholder(self, pii_type: PiiType, value: str) -> str:
        """Return the placeholder for ``value``, allocating the next number on first sight."""
        key = (pii_type, normalize(pii_type, value))
        found = self._placeholders.get(key)
        if found is None:
            number = self._counts.get(pii_type, 0) + 1
            self._counts[pii_type] = number
            found = self._placeholders[key] = f"<{pii_type.value}_{number}>"
        return found

    def mask(self, text: str) -> MaskResult:
        """Mask ``text``, reusing placeholders given earlier in this session."""
        entities = self._masker.detect(text)
        if not entities:
            return MaskResult(text, entities)
        parts: list[str] = []
        position = 0
        for entity in entities:
            parts.append(text[position : entity.start])
            parts.append(self.placeholder(entity.type, text[entity.start : entity.end]))
            position = entity.end
        parts.append(text[position:])
        return MaskResult("".join(parts), entities)
