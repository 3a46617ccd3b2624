"""What the store keeps of text derived from payloads: sealed like the payloads, or digested.

A step's error, a dead letter's reason and a quarantine entry's reason and problems may quote
the payload they are about (``ValueError(f"could not parse {text}")``), so they go through the
payload codec too: encrypted at rest when encryption is configured. An idempotency key is
chosen by the client and may be anything, an e-mail address included; it is only ever looked
up, never shown, so the store keeps its SHA-256 digest.

Rows written before sealing still read: SQLite hands them back as ``str`` (the columns were
TEXT), PostgreSQL as the UTF-8 bytes its migration converted them to, which an encrypting
codec recognizes as not sealed by it. ``sluice encryption rotate`` seals them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from sluice.store.codec import PayloadCodec


def seal_text(codec: PayloadCodec, text: str) -> bytes:
    """The bytes to store for ``text``."""
    return codec.encode(text.encode("utf-8"))


def seal_optional(codec: PayloadCodec, text: str | None) -> bytes | None:
    """:func:`seal_text`, passing ``None`` through."""
    return None if text is None else seal_text(codec, text)


def open_text(codec: PayloadCodec, stored: bytes | str | None) -> str | None:
    """The text stored by :func:`seal_text`, or by a release that stored it plain."""
    if stored is None:
        return None
    if isinstance(stored, str):
        return stored  # a SQLite row from before sealing
    stored = bytes(stored)
    is_sealed: Callable[[bytes], bool] | None = getattr(codec, "is_sealed", None)
    if is_sealed is not None and not is_sealed(stored):
        return stored.decode("utf-8", "replace")  # plain text from before sealing
    return codec.decode(stored).decode("utf-8", "replace")


def needs_sealing(codec: PayloadCodec, stored: bytes | str) -> bool:
    """Whether ``stored`` should be rewritten: plain from before sealing, or an old key's."""
    if isinstance(stored, str):
        return True
    needs: Callable[[bytes], bool] | None = getattr(codec, "needs_reencryption", None)
    return needs is not None and needs(bytes(stored))


def reseal_text(codec: PayloadCodec, stored: bytes | str) -> bytes:
    """``stored`` opened with whatever sealed it (or nothing) and sealed with the active key."""
    return seal_text(codec, open_text(codec, stored) or "")


def key_digest(key: str) -> str:
    """What the idempotency table keeps of a key: its SHA-256, hex (64 chars)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
