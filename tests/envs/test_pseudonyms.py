"""Pseudonyms: deterministic under one key, different under another, of the same kind as the
value (the guard's own recognizers find them as that kind), never the value itself."""

from __future__ import annotations

import random

import pytest

from sluice.envs.pseudonyms import KEY_BYTES, Pseudonymizer
from sluice.guard.pii import PiiMasker, normalize
from sluice.guard.pii_values import GENERATORS
from sluice.guard.recognizers import PiiType

KEY = bytes(range(KEY_BYTES))


@pytest.mark.parametrize("pii_type", sorted(GENERATORS, key=str))
def test_fakes_are_stable_and_of_the_same_kind(pii_type: PiiType) -> None:
    """200 generated values of each kind: each fake is found by the masker as that kind, is
    not the value, and is the same from a fresh pseudonymizer with the same key."""
    rng = random.Random(14)
    masker = PiiMasker()
    first, again = Pseudonymizer(KEY), Pseudonymizer(KEY)
    other = Pseudonymizer(bytes(reversed(KEY)))
    for _ in range(200):
        value = GENERATORS[pii_type](rng)
        fake = first.fake(pii_type, value)
        assert fake == again.fake(pii_type, value)
        assert normalize(pii_type, fake) != normalize(pii_type, value)
        assert other.fake(pii_type, value) != fake
        found = masker.detect(f"value: {fake} end")
        assert [e.type for e in found] == [pii_type], (value, fake)


def test_spellings_of_one_value_share_a_fake() -> None:
    """Case and spacing do not make another value: the masker's normalization decides."""
    fakes = Pseudonymizer(KEY)
    assert fakes.fake(PiiType.EMAIL, "Jo@Example.org") == fakes.fake(
        PiiType.EMAIL, "jo@example.org"
    )
    assert fakes.fake(PiiType.PHONE, "(415) 555-2671") == fakes.fake(PiiType.PHONE, "4155552671")
    assert fakes.fake(PiiType.CARD, "4111 1111 1111 1111") == fakes.fake(
        PiiType.CARD, "4111-1111-1111-1111"
    )


def test_distinct_values_rarely_share_a_fake() -> None:
    """2,000 distinct phone numbers (a small space) get 2,000 distinct fakes: joins on a value
    do not merge two people."""
    fakes = Pseudonymizer(KEY)
    values = {f"+1 415 555 {n:04d}" for n in range(2000)}
    assert len({fakes.fake(PiiType.PHONE, v) for v in values}) == len(values)


def test_short_keys_are_refused() -> None:
    """A key shorter than 32 bytes could be guessed; it is refused."""
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Pseudonymizer(b"short")
