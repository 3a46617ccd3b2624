"""Deterministic pseudonyms: each PII value maps to a fake value of the same kind.

The fake is drawn from a random generator seeded with ``HMAC-SHA256(key, type, value)``, the
value normalized as the masker compares values (``Jo@X.com`` and ``jo@x.com`` are one address,
``+1 (415) 555-2671`` and ``4155552671`` one phone). So:

- the same value always gets the same fake, in one file and across exports made with the same
  key: duplicates, and joins between events on a value, survive masking;
- without the key nobody can map a fake back by hashing every candidate of a small space (all
  SSNs, all phone numbers of an area): the HMAC key is what makes the pseudonyms one-way;
- a fake is valid for its kind (Luhn for cards, mod-97 for IBANs, issued SSN ranges), so the
  app's own PII masking finds and masks it as it masked the real one, and the behaviour of a
  workflow on a masked fixture is the behaviour on the real data.

Fakes are drawn from large spaces (at least a billion values per kind) so two real values rarely
share one; a fake never equals the value it replaces.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
import string
from collections.abc import Callable

from sluice.guard.pii import normalize
from sluice.guard.pii_values import card_digits, format_card, iban_compact, nino, ssn
from sluice.guard.recognizers import PiiType

#: Bytes of a generated key; keys given by the user must be at least this long too.
KEY_BYTES = 32
_FIRST = ("alex", "sam", "robin", "jamie", "casey", "morgan", "taylor", "jordan", "riley", "avery")
_LAST = ("river", "stone", "field", "brook", "hill", "wood", "lake", "marsh", "dale", "ford")
# Domains reserved for documentation (RFC 2606): a fake address can never reach anyone.
_DOMAINS = ("example.com", "example.org", "example.net")


def _email(rng: random.Random, _: str) -> str:
    tag = "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    return f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}.{tag}@{rng.choice(_DOMAINS)}"


def _phone(rng: random.Random, _: str) -> str:
    # North American shape: area and exchange codes start 2-9, which the recognizer checks.
    area = rng.choice("23456789") + f"{rng.randint(0, 99):02d}"
    exchange = rng.choice("23456789") + f"{rng.randint(0, 99):02d}"
    return f"+1 {area} {exchange} {rng.randint(0, 9999):04d}"


def _card(rng: random.Random, _: str) -> str:
    return format_card(rng, card_digits(rng))


def _iban(rng: random.Random, original: str) -> str:
    country = original[:2].upper()
    try:
        return iban_compact(rng, country)
    except KeyError:  # a country the generator does not know: any valid IBAN will do
        return iban_compact(rng)


def _ssn(rng: random.Random, _: str) -> str:
    return ssn(rng).replace(" ", "-")


def _nino(rng: random.Random, _: str) -> str:
    return nino(rng)


def _ip(rng: random.Random, original: str) -> str:
    try:
        version = ipaddress.ip_address(original).version
    except ValueError:
        version = 4
    if version == 6:
        return str(ipaddress.IPv6Address(rng.getrandbits(128)))
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


def _person(rng: random.Random, _: str) -> str:
    return f"{rng.choice(_FIRST).title()} {rng.choice(_LAST).title()}{rng.randint(1, 9999)}"


_FAKERS: dict[PiiType, Callable[[random.Random, str], str]] = {
    PiiType.EMAIL: _email,
    PiiType.PHONE: _phone,
    PiiType.CARD: _card,
    PiiType.IBAN: _iban,
    PiiType.US_SSN: _ssn,
    PiiType.UK_NINO: _nino,
    PiiType.IP_ADDRESS: _ip,
    PiiType.PERSON: _person,
}


class Pseudonymizer:
    """Maps PII values to fakes of the same kind, keyed by a secret of at least 32 bytes."""

    def __init__(self, key: bytes) -> None:
        if len(key) < KEY_BYTES:
            raise ValueError(f"a pseudonym key needs at least {KEY_BYTES} bytes, got {len(key)}")
        self._key = key
        self._seen: dict[tuple[PiiType, str], str] = {}

    def fake(self, pii_type: PiiType, value: str) -> str:
        """The fake for ``value``: always the same for the same key, type and value."""
        identity = normalize(pii_type, value)
        cached = self._seen.get((pii_type, identity))
        if cached is not None:
            return cached
        digest = hmac.new(
            self._key, f"{pii_type.value}\x00{identity}".encode(), hashlib.sha256
        ).digest()
        rng = random.Random(int.from_bytes(digest, "big"))
        maker = _FAKERS.get(pii_type, _person)
        fake = maker(rng, value)
        while normalize(pii_type, fake) == identity:  # drawn from the same rng: still stable
            fake = maker(rng, value)
        # Bounded: a long export meets many values, and recomputing one costs microseconds.
        if len(self._seen) < 100_000:
            self._seen[(pii_type, identity)] = fake
        return fake
