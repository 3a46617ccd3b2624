"""Each recognizer on the formats it must find and the look-alikes it must leave alone."""

from __future__ import annotations

import pytest

from sluice.guard import PiiMasker, PiiType
from sluice.guard.recognizers import card_prefix_valid, iban_valid, luhn_valid

MASKER = PiiMasker()


def found(text: str) -> list[tuple[str, str]]:
    """The (type, value) pairs the default masker finds in ``text``."""
    return [(e.type.value, text[e.start : e.end]) for e in MASKER.detect(text)]


POSITIVES = [
    # e-mail
    ("EMAIL", "write to john.doe@example.com please", "john.doe@example.com"),
    ("EMAIL", "j.smith+bank@mail.acme-corp.io.", "j.smith+bank@mail.acme-corp.io"),
    ("EMAIL", "(MARIA_GARCIA@YAHOO.CO.UK)", "MARIA_GARCIA@YAHOO.CO.UK"),
    # phones
    ("PHONE", "call (415) 555-2671 today", "(415) 555-2671"),
    ("PHONE", "call 415-555-2671", "415-555-2671"),
    ("PHONE", "call 415.555.2671", "415.555.2671"),
    ("PHONE", "call +1 415 555 2671", "+1 415 555 2671"),
    ("PHONE", "call 1-800-555-0199.", "1-800-555-0199"),
    ("PHONE", "call +14155552671", "+14155552671"),
    ("PHONE", "call +44 (0)20 7946 0958", "+44 (0)20 7946 0958"),
    ("PHONE", "call 020 7946 0958", "020 7946 0958"),
    ("PHONE", "call 07700 900123", "07700 900123"),
    ("PHONE", "call +49 30 1234567", "+49 30 1234567"),
    ("PHONE", "call 0049 89 1234567", "0049 89 1234567"),
    ("PHONE", "call 0151 12345678", "0151 12345678"),
    ("PHONE", "call 01 23 45 67 89", "01 23 45 67 89"),
    ("PHONE", "call +33 6 12 34 56 78", "+33 6 12 34 56 78"),
    ("PHONE", "call 06.12.34.56.78", "06.12.34.56.78"),
    ("PHONE", "call +91 98765 43210", "+91 98765 43210"),
    ("PHONE", "call 98765 43210", "98765 43210"),
    ("PHONE", "call (02) 9876 5432", "(02) 9876 5432"),
    ("PHONE", "call +81 3-1234-5678", "+81 3-1234-5678"),
    ("PHONE", "call 0161 496 0000 2 times", "0161 496 0000"),
    # Phone-shaped with unassigned area or exchange codes: masked all the same.
    ("PHONE", "call 012-345-6789", "012-345-6789"),
    ("PHONE", "call (123) 456-7890", "(123) 456-7890"),
    ("PHONE", "call 123-456-7890", "123-456-7890"),
    ("PHONE", "call 555 123 4567", "555 123 4567"),
    ("PHONE", "call 123.456.7890", "123.456.7890"),
    ("PHONE", "call 1-123-456-7890", "1-123-456-7890"),
    ("PHONE", "call (012) 345-6789 now", "(012) 345-6789"),
    # cards
    ("CARD", "card 4111 1111 1111 1111 12/25", "4111 1111 1111 1111"),
    ("CARD", "card 5555-5555-5555-4444", "5555-5555-5555-4444"),
    ("CARD", "card 4012888888881881", "4012888888881881"),
    ("CARD", "amex 3782 822463 10005", "3782 822463 10005"),
    ("CARD", "diners 3056 930902 5904", "3056 930902 5904"),
    ("CARD", "mc 2223 0000 4841 0010", "2223 0000 4841 0010"),
    # IBANs
    ("IBAN", "IBAN GB82 WEST 1234 5698 7654 32 please", "GB82 WEST 1234 5698 7654 32"),
    ("IBAN", "to DE89370400440532013000.", "DE89370400440532013000"),
    ("IBAN", "to FR14 2004 1010 0505 0001 3M02 606", "FR14 2004 1010 0505 0001 3M02 606"),
    ("IBAN", "to NO9386011117947", "NO9386011117947"),
    # national ids
    ("US_SSN", "ssn 123-45-6789,", "123-45-6789"),
    ("US_SSN", "ssn 123 45 6789", "123 45 6789"),
    ("US_SSN", "my SSN is 123456789.", "123456789"),
    ("UK_NINO", "NI AB 12 34 56 C", "AB 12 34 56 C"),
    ("UK_NINO", "NI ab123456c.", "ab123456c"),
    # IP addresses
    ("IP_ADDRESS", "from 192.168.1.1.", "192.168.1.1"),
    ("IP_ADDRESS", "from 2001:db8::8a2e:370:7334,", "2001:db8::8a2e:370:7334"),
    ("IP_ADDRESS", "from ::ffff:192.0.2.1", "::ffff:192.0.2.1"),
    ("IP_ADDRESS", "from FE80::1FF:FE23:4567:890A", "FE80::1FF:FE23:4567:890A"),
    ("IP_ADDRESS", "from 2001:0db8:85a3:0000:0000:8a2e:0370:7334", None),
]


@pytest.mark.parametrize(("pii_type", "text", "value"), POSITIVES)
def test_finds(pii_type: str, text: str, value: str | None) -> None:
    """The value is found with exactly its span and type, and nothing else is."""
    expected = value if value is not None else text.split(" ", 1)[1]
    assert found(text) == [(pii_type, expected)]


NEGATIVES = [
    "order #41111111",
    "order number 4155552671",
    "Order ID: A123456789",
    "reference 4111111111111111",
    "transaction id 5555555555554444",
    "tracking number 1234567890123",
    "I was charged $1,250.00 twice",
    "a fee of £300 and €1,234,567",
    "on 2023-05-12 and 12/05/2023 and 12.05.2023",
    "at 2023-05-12T14:30:00Z",
    "my card ending in 4821",
    "**** **** **** 4821",
    "XXXX-XXXX-XXXX-4821",
    "app version 4.12.1",
    "version 2.4.1.0",
    "v10.2.0.1",
    "at 10:30:45",
    "device 00:1A:2B:3C:4D:5E",
    "sort code 20-00-00",
    "the code 482913",
    "text STOP to 80080",
    "ping @jdoe",
    "card 4111 1111 1111 1112",  # fails Luhn
    "IBAN GB83 WEST 1234 5698 7654 32",  # fails mod-97
    "server 256.1.2.3",
    "ssn 000-12-3456 and 666-12-3456 and 912-12-3456",
    "bare nine digits 123456789",
    "NI QQ123456C and GB123456A",  # Q never a first letter, GB never a prefix
    "account 1234567890",  # run together, ten digits need assignable codes to be a phone
    "order 012-345-6789 and case no. 123-456-7890",  # phone-shaped references
    "confirmation 123.456.7890, ticket #123 456 7890",
    "$123 456 7890 and 1 234 567 EUR",
    "ISBN 978-0-306-40615-7",
    "sort code and account 41-72-71 18181818",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_leaves_alone(text: str) -> None:
    """Hard negatives: references, amounts, dates, versions and invalid look-alikes."""
    assert found(text) == []


class TestChecks:
    """The checksum and prefix helpers."""

    def test_luhn(self) -> None:
        """Luhn accepts the classic test numbers and rejects a one-digit change."""
        assert luhn_valid("4111111111111111")
        assert luhn_valid("378282246310005")
        assert not luhn_valid("4111111111111112")

    def test_card_prefix(self) -> None:
        """Scheme prefixes and lengths: Visa 16, Amex 15, nothing starting with 1, 7, 8, 9."""
        assert card_prefix_valid("4111111111111111")
        assert card_prefix_valid("378282246310005")
        assert not card_prefix_valid("3782822463100050")
        assert not card_prefix_valid("9111111111111111")
        assert not card_prefix_valid("2000111111111111")

    def test_iban(self) -> None:
        """IBAN needs the country's length and mod-97 of 1."""
        assert iban_valid("GB82WEST12345698765432")
        assert not iban_valid("GB82WEST1234569876543")
        assert not iban_valid("GB83WEST12345698765432")
        assert not iban_valid("QQ82WEST12345698765432")


def test_type_selection() -> None:
    """A masker built for some types ignores the others."""
    masker = PiiMasker(["EMAIL"])
    assert masker.types == (PiiType.EMAIL,)
    assert [e.type for e in masker.detect("a@b.io 4111 1111 1111 1111")] == [PiiType.EMAIL]


def test_overlap_priority() -> None:
    """An IBAN's digits are not also reported as a phone or card number."""
    text = "IBAN DE89 3704 0044 0532 0130 00"
    assert found(text) == [("IBAN", "DE89 3704 0044 0532 0130 00")]
