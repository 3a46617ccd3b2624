"""Seeded generators of realistic PII values, in the formats people actually type them.

Used by :mod:`sluice.guard.pii_corpus` to inject PII into ticket text. Every value is valid where
a validator exists (Luhn, mod-97, SSA ranges), since an invalid one is not PII the masker should
find; invalid look-alikes are generated separately, as hard negatives.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from sluice.guard._ibans import IBAN_LENGTHS
from sluice.guard.recognizers import PiiType

_FIRST = ("john", "maria", "li", "ahmed", "olga", "sean", "priya", "lukas", "chloe", "kwame")
_LAST = ("smith", "garcia", "wang", "khan", "ivanova", "o-brien", "patel", "muller", "martin")
_DOMAINS = (
    "gmail.com",
    "yahoo.co.uk",
    "outlook.com",
    "proton.me",
    "example.org",
    "mail.acme-corp.io",
    "cs.ox.ac.uk",
    "web.de",
    "orange.fr",
    "bank.example",
)


def _digits(rng: random.Random, count: int, first: str = string.digits) -> str:
    return rng.choice(first) + "".join(rng.choice(string.digits) for _ in range(count - 1))


def email(rng: random.Random) -> str:
    """An address with dots, plus-tags, digits, hyphens, sub-domains or upper case."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    local = rng.choice(
        (
            f"{first}.{last}",
            f"{first}{last}{rng.randint(1, 99)}",
            f"{first[0]}.{last}+{rng.choice(('bank', 'spam', 'x'))}",
            f"{first}_{last}",
            f"{last}{rng.randint(1950, 2005)}",
        )
    )
    value = f"{local}@{rng.choice(_DOMAINS)}"
    return value.upper() if rng.random() < 0.1 else value


def _nanp(rng: random.Random) -> tuple[str, str, str]:
    return _digits(rng, 3, "23456789"), _digits(rng, 3, "23456789"), _digits(rng, 4)


def phone(rng: random.Random) -> str:
    """A phone number in one of about thirty national and international formats."""
    a, e, s = _nanp(rng)

    def d(count: int) -> str:
        return _digits(rng, count)

    formats: tuple[Callable[[], str], ...] = (
        lambda: f"({a}) {e}-{s}",
        lambda: f"{a}-{e}-{s}",
        lambda: f"{a}.{e}.{s}",
        lambda: f"+1 {a} {e} {s}",
        lambda: f"+1-{a}-{e}-{s}",
        lambda: f"1-800-{e}-{s}",
        lambda: f"+1{a}{e}{s}",
        lambda: f"+1 ({a}) {e}-{s}",
        lambda: f"020 7946 {d(4)}",
        lambda: f"07700 900{d(3)}",
        lambda: f"+44 7700 900{d(3)}",
        lambda: f"+44 (0)20 7946 {d(4)}",
        lambda: f"0161 496 {d(4)}",
        lambda: f"+4420{d(8)}",
        lambda: f"+49 30 {d(7)}",
        lambda: f"030 {d(8)}",
        lambda: f"0151 {d(8)}",
        lambda: f"0049 89 {d(7)}",
        lambda: f"01 {d(2)} {d(2)} {d(2)} {d(2)}",
        lambda: f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",
        lambda: f"06.{d(2)}.{d(2)}.{d(2)}.{d(2)}",
        lambda: f"+91 {_digits(rng, 5, '6789')} {d(5)}",
        lambda: f"{_digits(rng, 5, '6789')} {d(5)}",
        lambda: f"+61 2 {d(4)} {d(4)}",
        lambda: f"0412 {d(3)} {d(3)}",
        lambda: f"(02) {d(4)} {d(4)}",
        lambda: f"+353 1 {d(3)} {d(4)}",
        lambda: f"087 {d(3)} {d(4)}",
        lambda: f"+34 612 {d(2)} {d(2)} {d(2)}",
        lambda: f"+31 20 {d(3)} {d(4)}",
        lambda: f"06-{d(8)}",
        lambda: f"+55 11 9{d(4)}-{d(4)}",
        lambda: f"+81 3-{d(4)}-{d(4)}",
        # Phone-shaped with unassigned codes (area or exchange starting 0 or 1): still phones.
        lambda: f"({_digits(rng, 1, '01')}{d(2)}) {e}-{s}",
        lambda: f"{a}-{_digits(rng, 1, '01')}{d(2)}-{s}",
        lambda: f"1{d(2)}.{d(3)}.{d(4)}",
    )
    return rng.choice(formats)()


def luhn_complete(partial: str) -> str:
    """Append the Luhn check digit to ``partial``."""
    total = 0
    for index, char in enumerate(reversed(partial)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return partial + str((10 - total % 10) % 10)


def card_digits(rng: random.Random) -> str:
    """A Luhn-valid number with a real scheme prefix and length."""
    prefix, length = rng.choice(
        (
            ("4", 16),
            (str(rng.randint(51, 55)), 16),
            (str(rng.randint(2221, 2720)), 16),
            (rng.choice(("34", "37")), 15),
            ("6011", 16),
            (str(rng.randint(3528, 3589)), 16),
            ("36", 14),
            ("62", 16),
        )
    )
    return luhn_complete(prefix + _digits(rng, length - len(prefix) - 1))


def format_card(rng: random.Random, digits: str) -> str:
    """Group ``digits`` the way its scheme prints them, with spaces, dashes or nothing."""
    sep = rng.choice((" ", " ", "-", ""))
    if len(digits) == 16:
        groups = [digits[i : i + 4] for i in range(0, 16, 4)]
    else:  # Amex 4-6-5 and Diners 4-6-4
        groups = [digits[:4], digits[4:10], digits[10:]]
    return sep.join(groups)


def card(rng: random.Random) -> str:
    """A valid card number, formatted."""
    return format_card(rng, card_digits(rng))


# Country, BBAN alphabet per position: "n" digit, "a" upper letter, "c" alphanumeric.
_BBAN = {
    "GB": "aaaa" + "n" * 14,
    "DE": "n" * 18,
    "FR": "n" * 10 + "c" * 11 + "nn",
    "ES": "n" * 20,
    "IT": "a" + "n" * 10 + "c" * 12,
    "NL": "aaaa" + "n" * 10,
    "BE": "n" * 12,
    "CH": "n" * 5 + "c" * 12,
    "IE": "aaaa" + "n" * 14,
    "PL": "n" * 24,
    "AT": "n" * 16,
    "PT": "n" * 21,
    "NO": "n" * 11,
}
_ALPHABETS = {"n": string.digits, "a": string.ascii_uppercase, "c": string.digits + "ABCXYZ"}


def iban_compact(rng: random.Random, country: str | None = None) -> str:
    """A valid IBAN without separators."""
    country = country or rng.choice(tuple(_BBAN))
    bban = "".join(rng.choice(_ALPHABETS[kind]) for kind in _BBAN[country])
    assert len(bban) + 4 == IBAN_LENGTHS[country]
    number = int("".join(str(int(char, 36)) for char in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


def iban(rng: random.Random) -> str:
    """A valid IBAN, compact or in groups of four as printed on statements."""
    compact = iban_compact(rng)
    if rng.random() < 0.5:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def ssn(rng: random.Random) -> str:
    """A US SSN in issued ranges, dashed or spaced (bare digits are in the corpus templates)."""
    area = rng.choice([n for n in range(1, 900) if n != 666])
    parts = (f"{area:03d}", f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}")
    return rng.choice(("-", "-", " ")).join(parts)


_NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
_NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"


def nino(rng: random.Random) -> str:
    """A UK National Insurance number, compact or spaced in pairs."""
    while True:
        prefix = rng.choice(_NINO_FIRST) + rng.choice(_NINO_SECOND)
        if prefix not in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
            break
    pairs = [f"{rng.randint(0, 99):02d}" for _ in range(3)]
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return prefix + "".join(pairs) + suffix
    return " ".join([prefix, *pairs, suffix])


def ip_address(rng: random.Random) -> str:
    """An IPv4 address, or an IPv6 one full, compressed, link-local or IPv4-mapped."""
    octets = ".".join(str(rng.randint(1, 254)) for _ in range(4))
    hextets = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    return rng.choice(
        (
            lambda: octets,
            lambda: octets,
            lambda: ":".join(f"{int(h, 16):04x}" for h in hextets),
            lambda: "2001:db8::" + ":".join(hextets[:3]),
            lambda: "fe80::" + ":".join(hextets[:4]),
            lambda: "::ffff:" + octets,
            lambda: ":".join(hextets).upper(),
        )
    )()


GENERATORS: dict[PiiType, Callable[[random.Random], str]] = {
    PiiType.EMAIL: email,
    PiiType.PHONE: phone,
    PiiType.CARD: card,
    PiiType.IBAN: iban,
    PiiType.US_SSN: ssn,
    PiiType.UK_NINO: nino,
    PiiType.IP_ADDRESS: ip_address,
}
