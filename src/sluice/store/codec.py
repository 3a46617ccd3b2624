"""Payload codecs: how event inputs and step outputs are turned into stored bytes.

The store never interprets payloads; it hands them to a codec on the way in and out. The
identity codec is the default; encryption at rest plugs in here.
"""

from __future__ import annotations

from typing import Protocol


class PayloadCodec(Protocol):
    """Turns plaintext payload bytes into stored bytes and back."""

    def encode(self, plaintext: bytes) -> bytes:
        """Return the bytes to store for ``plaintext``."""
        ...

    def decode(self, stored: bytes) -> bytes:
        """Return the plaintext for bytes produced by :meth:`encode`."""
        ...


class IdentityCodec:
    """Stores payloads as they are."""

    def encode(self, plaintext: bytes) -> bytes:
        """Return ``plaintext`` unchanged."""
        return plaintext

    def decode(self, stored: bytes) -> bytes:
        """Return ``stored`` unchanged."""
        return stored
