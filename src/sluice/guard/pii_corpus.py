"""A labelled evaluation set for the PII masker: real ticket text with injected PII.

Each example is a real support ticket (BANKING77 in the reference application) into which zero
to three PII values (:mod:`sluice.guard.pii_values`) are inserted at word boundaries, inside
short phrases people write ("you can reach me on ..."), together with zero to two hard
negatives that look like PII and must not be masked: order and reference numbers, amounts,
dates, card-last-4 mentions, versions, times, MAC addresses and checksum-failing look-alikes.
The labels are exact character spans. Everything is generated from one seed, so the set is the
same on every machine.

:func:`score` computes precision and recall per type by exact span and type match.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sluice.guard import pii_values
from sluice.guard.pii import Entity
from sluice.guard.recognizers import PiiType

_PHRASES: dict[PiiType, tuple[str, ...]] = {
    PiiType.EMAIL: ("my email is {}.", "contact me at {}", "email: {}", "({})", "reply to {},"),
    PiiType.PHONE: (
        "call me on {}.",
        "my number is {}",
        "phone: {}",
        "reach me at {} today",
        "({})",
    ),
    PiiType.CARD: ("my card {} was declined.", "card number: {}", "I used {},", "the card {}"),
    PiiType.IBAN: ("my IBAN is {}.", "send it to {}", "IBAN: {}", "account {},"),
    PiiType.US_SSN: ("my SSN is {}.", "social security number {}", "SSN: {}", "ssn {}"),
    PiiType.UK_NINO: ("my NI number is {}.", "National Insurance: {}", "NINO {}", "NI no {},"),
    PiiType.IP_ADDRESS: ("from IP {}.", "my IP address is {}", "logged in from {},", "ip: {}"),
}
_BARE_SSN_PHRASES = ("my SSN is {}.", "SSN: {}", "social security number {}")


def _d(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def _bad_luhn_card(rng: random.Random) -> str:
    digits = pii_values.card_digits(rng)
    return pii_values.format_card(rng, digits[:-1] + str((int(digits[-1]) + 1) % 10))


def _bad_iban(rng: random.Random) -> str:
    compact = pii_values.iban_compact(rng)
    # Check digits run 02..98; 00, 01 and 99 are equal to 97, 98 and 02 modulo 97, so the wrong
    # value stays in 02..98 to be wrong for certain.
    wrong = (int(compact[2:4]) - 2 + rng.randint(1, 90)) % 97 + 2
    return f"{compact[:2]}{wrong:02d}{compact[4:]}"


_NEGATIVES: tuple[Callable[[random.Random], str], ...] = (
    lambda r: f"order #{_d(r, 8)}",
    lambda r: f"order number {r.randint(2, 9)}{_d(r, 9)}",
    lambda r: f"Order ID: A{_d(r, 9)}",
    lambda r: f"reference {_d(r, 12)}",
    lambda r: f"transaction id {pii_values.card_digits(r)}",
    lambda r: f"tracking number {_d(r, 13)}",
    lambda r: f"invoice {r.randint(2, 9)}{_d(r, 9)}",
    lambda r: f"${r.randint(1, 99999):,}.{_d(r, 2)}",
    lambda r: f"£{r.randint(1, 5000)}",
    lambda r: f"€{r.randint(1000, 999999):,}",
    lambda r: f"{r.randint(100, 99999)} EUR",
    lambda r: f"on {r.randint(2015, 2025)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    lambda r: f"since {r.randint(1, 28):02d}/{r.randint(1, 12):02d}/{r.randint(2015, 2025)}",
    lambda r: f"on {r.randint(1, 28):02d}.{r.randint(1, 12):02d}.{r.randint(2015, 2025)}",
    lambda r: f"at {r.randint(2015, 2025)}-0{r.randint(1, 9)}-1{r.randint(0, 9)}T14:30:00Z",
    lambda r: f"card ending in {_d(r, 4)}",
    lambda r: f"**** **** **** {_d(r, 4)}",
    lambda r: f"XXXX-XXXX-XXXX-{_d(r, 4)}",
    lambda r: f"last four digits {_d(r, 4)}",
    lambda r: f"app version {r.randint(1, 20)}.{r.randint(0, 30)}.{r.randint(0, 9)}",
    lambda r: f"version {r.randint(1, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}",
    lambda r: f"v{r.randint(1, 20)}.{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(0, 99)}",
    lambda r: f"iOS {r.randint(12, 18)}.{r.randint(0, 6)}.{r.randint(1, 3)}",
    lambda r: f"at {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}",
    lambda r: "device " + ":".join(f"{r.randint(0, 255):02X}" for _ in range(6)),
    lambda r: f"sort code {_d(r, 2)}-{_d(r, 2)}-{_d(r, 2)}",
    lambda r: f"the code {_d(r, 6)}",
    lambda r: f"text STOP to {_d(r, 5)}",
    lambda r: f"@{r.choice(('jdoe', 'maria_g', 'support'))}",
    lambda r: f"the number {_bad_luhn_card(r)}",
    lambda r: f"IBAN {_bad_iban(r)}",
    lambda r: f"server {r.randint(256, 999)}.{r.randint(0, 255)}.{r.randint(0, 255)}.1",
    lambda r: f"{r.choice(('000', '666', '912'))}-{_d(r, 2)}-{_d(r, 4)}",
    # Phone-shaped (3-3-4) numbers that are references or amounts, not phones.
    lambda r: f"order {r.choice('01')}{_d(r, 2)}-{_d(r, 3)}-{_d(r, 4)}",
    lambda r: f"case no. 1{_d(r, 2)}-{_d(r, 3)}-{_d(r, 4)}",
    lambda r: f"confirmation {_d(r, 3)}.{_d(r, 3)}.{_d(r, 4)}",
    lambda r: f"ticket #{_d(r, 3)} {_d(r, 3)} {_d(r, 4)}",
    lambda r: f"${_d(r, 3)} {_d(r, 3)} {_d(r, 4)}",
    lambda r: f"{r.randint(1, 9)} {_d(r, 3)} {_d(r, 3)} EUR",
    lambda r: f"ISBN 978-{r.randint(0, 9)}-{_d(r, 3)}-{_d(r, 5)}-{r.randint(0, 9)}",
)


@dataclass(frozen=True, slots=True)
class LabelledText:
    """One evaluation example: a text and the PII spans in it."""

    text: str
    entities: tuple[Entity, ...] = field(default=())


def read_ticket_texts(path: Path) -> list[str]:
    """Read the ``text`` column of a BANKING77-style CSV file."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [row["text"].strip() for row in csv.DictReader(handle) if row["text"].strip()]


def _fill(rng: random.Random, pii_type: PiiType) -> tuple[str, str]:
    """Return a phrase and the PII value inside it."""
    if pii_type is PiiType.US_SSN and rng.random() < 0.15:
        value = pii_values.ssn(rng).replace("-", "").replace(" ", "")
        return rng.choice(_BARE_SSN_PHRASES), value
    return rng.choice(_PHRASES[pii_type]), pii_values.GENERATORS[pii_type](rng)


def labelled_example(rng: random.Random, ticket: str, n_pii: int, n_negatives: int) -> LabelledText:
    """Insert ``n_pii`` PII phrases and ``n_negatives`` hard negatives into ``ticket``."""
    words = ticket.split(" ")
    inserts: list[tuple[int, str, PiiType | None, str]] = []
    for _ in range(n_pii):
        chosen = rng.choice(tuple(_PHRASES))
        phrase, value = _fill(rng, chosen)
        inserts.append((rng.randint(0, len(words)), phrase, chosen, value))
    for _ in range(n_negatives):
        inserts.append((rng.randint(0, len(words)), "{}", None, rng.choice(_NEGATIVES)(rng)))
    inserts.sort(key=lambda item: item[0])

    parts: list[str] = []
    entities: list[Entity] = []
    length = 0

    def add(piece: str) -> None:
        nonlocal length
        if parts:
            parts.append(" ")
            length += 1
        parts.append(piece)
        length += len(piece)

    position = 0
    for index, phrase, pii_type, value in inserts:
        for word in words[position:index]:
            add(word)
        position = index
        before, after = phrase.split("{}")
        add(before + value + after)
        if pii_type is not None:
            start = length - len(after) - len(value)
            entities.append(Entity(pii_type, start, start + len(value)))
    for word in words[position:]:
        add(word)
    return LabelledText("".join(parts), tuple(entities))


def build_corpus(
    tickets: Sequence[str], *, seed: int = 77, pii_weights: Sequence[float] = (2, 5, 2, 1)
) -> list[LabelledText]:
    """Build one labelled example per ticket, deterministically from ``seed``.

    ``pii_weights`` are the relative frequencies of 0, 1, 2, 3 injected values per ticket;
    hard negatives are injected 0, 1 or 2 at a time with weights 3, 5, 2.
    """
    rng = random.Random(seed)
    counts = range(len(pii_weights))
    return [
        labelled_example(
            rng,
            ticket,
            rng.choices(counts, weights=pii_weights)[0],
            rng.choices((0, 1, 2), weights=(3, 5, 2))[0],
        )
        for ticket in tickets
    ]


@dataclass(frozen=True, slots=True)
class TypeScore:
    """Exact-match counts and rates for one PII type."""

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        """Share of found spans that are labelled (1.0 when nothing was found)."""
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        """Share of labelled spans that were found (1.0 when nothing is labelled)."""
        labelled = self.true_positives + self.false_negatives
        return self.true_positives / labelled if labelled else 1.0


def score(
    detect: Callable[[str], Sequence[Entity]], corpus: Sequence[LabelledText]
) -> dict[PiiType, TypeScore]:
    """Precision and recall per type of ``detect`` on ``corpus``: a hit needs type and span."""
    counts: dict[PiiType, list[int]] = {}
    for example in corpus:
        gold = set(example.entities)
        found = set(detect(example.text))
        for entity in found | gold:
            tally = counts.setdefault(entity.type, [0, 0, 0])
            if entity in gold and entity in found:
                tally[0] += 1
            elif entity in found:
                tally[1] += 1
            else:
                tally[2] += 1
    return {pii_type: TypeScore(*tally) for pii_type, tally in sorted(counts.items())}
