"""IP addresses, v4 and v6, reported under one type and checked by :mod:`ipaddress`."""

from __future__ import annotations

import ipaddress
import re

from sluice.guard.recognizers import PatternRecognizer, PiiType, has_digit, is_reference

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# The first octet is matched digit first, its look-behind and the rest of the octet checked
# behind that digit (the same alternatives in the same order as _OCTET): a pattern that opens
# with a class lets the engine skip ahead to digits instead of trying every position.
_FIRST_OCTET = r"\d(?<![\w.]\d)(?:(?<=2)(?:5[0-5]|[0-4]\d)|(?<=1)\d\d|(?<=[1-9])\d|)"
_IPV4 = re.compile(rf"{_FIRST_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?"
    r"(?![\w:]|\.\d)"
)


def _validate_ipv4(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    return None if is_reference(text, match.start()) else match.span()


def _validate_ipv6(text: str, match: re.Match[str]) -> tuple[int, int] | None:
    try:
        ipaddress.IPv6Address(match.group())
    except ValueError:
        return None
    return match.span()


class IpRecognizer:
    """IPv4 and IPv6 addresses, reported under one type."""

    def __init__(self) -> None:
        self._v4 = PatternRecognizer(PiiType.IP_ADDRESS, _IPV4, _validate_ipv4, has_digit)
        self._v6 = PatternRecognizer(
            PiiType.IP_ADDRESS, _IPV6, _validate_ipv6, lambda text: text.count(":") >= 2
        )

    @property
    def pii_type(self) -> PiiType:
        """Always :attr:`PiiType.IP_ADDRESS`."""
        return PiiType.IP_ADDRESS

    def find(self, text: str) -> list[tuple[int, int]]:
        """Return the spans of valid IPv4 and IPv6 addresses in ``text``."""
        # IPv6 first: an IPv4-mapped address (``::ffff:192.0.2.1``) is one address, not two.
        return self._v6.find(text) + self._v4.find(text)
