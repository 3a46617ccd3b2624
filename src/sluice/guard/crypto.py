"""Encryption at rest: an AES-256-GCM payload codec over a keyring, so keys can rotate.

Every stored payload carries a small header naming the key that sealed it::

    offset  size  field
    0       3     magic  b"SLE"
    3       1     format version (1)
    4       1     n, the length of the key id (1-255)
    5       n     key id, ASCII
    5+n     12    nonce, random per payload
    17+n    ...   ciphertext followed by the 16-byte GCM tag

The whole header is authenticated as associated data: changing the key id, the version or the
nonce fails exactly like changing the ciphertext. :meth:`AesGcmCodec.encode` always uses the
keyring's active key; :meth:`AesGcmCodec.decode` accepts any key still in the keyring. Rotating is
therefore: add a new key, make it active, re-encrypt what :meth:`AesGcmCodec.needs_reencryption`
points at, then drop the old key.

Errors::

    SluiceError
    ├── ConfigError
    │   └── KeyringError        a key or the keyring itself cannot be used
    └── StoreError
        └── EncryptionError     a stored payload cannot be decrypted
            ├── UnknownKeyError     sealed with a key id that is not in the keyring
            └── TamperedDataError   not in this format, or fails authentication

Random 96-bit nonces are safe for about 2**32 payloads per key; rotate well before that.
The nonces come from a buffer of OS randomness (:class:`RandomPool`); a forked child starts
with an empty buffer (``os.register_at_fork``), since a copy of the parent's unread bytes would
give both processes the same nonces under the same key.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sluice.errors import ConfigError, StoreError

MAGIC = b"SLE"
FORMAT_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
_TAG_BYTES = 16
_SEALED_PREFIX = MAGIC + bytes((FORMAT_VERSION,))
_KEY_ID = re.compile(r"[A-Za-z0-9._:-]{1,255}")


class KeyringError(ConfigError):
    """A key or the keyring cannot be used: bad base64, wrong length, unknown active key."""


class EncryptionError(StoreError):
    """A stored payload cannot be decrypted."""


class UnknownKeyError(EncryptionError):
    """The payload was sealed with a key id that is not in the keyring."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"payload was encrypted with key {key_id!r}, which is not in the keyring")
        self.key_id = key_id


class TamperedDataError(EncryptionError):
    """The payload is not in the encrypted format, or it fails authentication."""


def new_key() -> str:
    """Generate a random 256-bit key, base64-encoded as the keyring configuration expects."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


@dataclass(frozen=True)
class Keyring:
    """Keys by id (256-bit each) and the id of the one that new payloads are sealed with."""

    keys: Mapping[str, bytes] = field(repr=False)
    active: str

    def __post_init__(self) -> None:
        problems = [
            f"keys.{kid}: key id must match {_KEY_ID.pattern}"
            for kid in self.keys
            if not _KEY_ID.fullmatch(kid)
        ]
        problems += [
            f"keys.{kid}: key must be {KEY_BYTES} bytes, got {len(key)}"
            for kid, key in self.keys.items()
            if len(key) != KEY_BYTES
        ]
        if self.active not in self.keys:
            problems.append(f"active: {self.active!r} is not in the keyring")
        if problems:
            raise KeyringError("unusable encryption keyring", problems)
        # Freeze a private copy so a caller mutating its dict cannot change keys under us.
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))

    @classmethod
    def from_base64(cls, keys: Mapping[str, str], active: str) -> Keyring:
        """Build a keyring from configuration: key id -> base64 of a 256-bit key."""
        decoded: dict[str, bytes] = {}
        problems: list[str] = []
        for key_id, text in keys.items():
            try:
                decoded[key_id] = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                problems.append(f"keys.{key_id}: not valid base64")
        if problems:
            raise KeyringError("unusable encryption keyring", problems)
        return cls(decoded, active)


class RandomPool:
    """Random bytes from the OS, fetched in blocks.

    Each ``os.urandom`` call releases the GIL, and on a busy process (the store's writer
    thread waiting for it) getting it back can cost far more than the call. Fetching 64 KiB at
    a time keeps the nonces OS-random while paying that price once per 5,000 payloads.

    Two things would hand the same bytes out twice, and both are closed: a forked child
    inherits the parent's unread buffer (every live pool is emptied in the child, at fork), and
    two threads could read the same position (a lock covers the read and the advance).
    """

    def __init__(self, block: int = 1 << 16) -> None:
        self._block = block
        self._buffer = b""
        self._pos = 0
        self._lock = threading.Lock()
        _LIVE_POOLS.add(self)

    def take(self, n: int) -> bytes:
        """``n`` fresh random bytes; never returns the same bytes twice, across threads and
        forked processes too."""
        with self._lock:
            if self._pos + n > len(self._buffer):
                self._buffer = os.urandom(max(self._block, n))
                self._pos = 0
            out = self._buffer[self._pos : self._pos + n]
            self._pos += n
            return out

    def _forget(self) -> None:
        """Drop the buffer (in a forked child: those bytes are the parent's too)."""
        # A fork can happen while another thread holds the lock; the child has only the
        # forking thread, so the lock is made anew rather than waited for.
        self._lock = threading.Lock()
        self._buffer = b""
        self._pos = 0


# Every pool alive in this process, so a forked child can empty them all before it runs on.
_LIVE_POOLS: weakref.WeakSet[RandomPool] = weakref.WeakSet()


def _forget_pools_in_child() -> None:
    for pool in list(_LIVE_POOLS):
        pool._forget()


os.register_at_fork(after_in_child=_forget_pools_in_child)


class AesGcmCodec:
    """A :class:`~sluice.store.codec.PayloadCodec` that seals payloads with AES-256-GCM."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}
        active = keyring.active.encode("ascii")
        self._active_header = MAGIC + bytes((FORMAT_VERSION, len(active))) + active
        self._nonces = RandomPool()

    @property
    def keyring(self) -> Keyring:
        """The keyring this codec encrypts and decrypts with."""
        return self._keyring

    def encode(self, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` with the active key; the result names the key and nonce."""
        nonce = self._nonces.take(NONCE_BYTES)
        header = self._active_header + nonce
        sealed = self._ciphers[self._keyring.active].encrypt(nonce, plaintext, header)
        return header + sealed

    def decode(self, stored: bytes) -> bytes:
        """Decrypt a payload sealed with any key of the keyring.

        Raises :class:`UnknownKeyError` for a key id not in the keyring and
        :class:`TamperedDataError` for anything that is not an intact payload of this format.
        """
        key_id, header_end = _parse_header(stored)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyError(key_id)
        if len(stored) - header_end < _TAG_BYTES:
            raise TamperedDataError("encrypted payload is truncated")
        nonce = stored[header_end - NONCE_BYTES : header_end]
        try:
            return cipher.decrypt(nonce, stored[header_end:], stored[:header_end])
        except InvalidTag:
            raise TamperedDataError(
                f"encrypted payload (key {key_id!r}) failed authentication: it was altered"
            ) from None

    def is_sealed(self, stored: bytes) -> bool:
        """Whether ``stored`` starts with this format's magic and version (sealed, not plain).

        Lets text stored plain before encryption was enabled still be read as it is.
        """
        return stored[: len(_SEALED_PREFIX)] == _SEALED_PREFIX

    def needs_reencryption(self, stored: bytes) -> bool:
        """Whether ``stored`` should be rewritten: sealed with a non-active key, or not sealed.

        Bytes that do not start with this format's header are taken as payloads written before
        encryption was enabled.
        """
        try:
            key_id, _ = _parse_header(stored)
        except TamperedDataError:
            return True
        return key_id != self._keyring.active

    def reencrypt(self, stored: bytes) -> bytes:
        """Decrypt with whichever key sealed ``stored`` and seal again with the active key."""
        return self.encode(self.decode(stored))


def key_id_of(stored: bytes) -> str:
    """Return the id of the key that sealed ``stored``, without decrypting it."""
    return _parse_header(stored)[0]


def _parse_header(stored: bytes) -> tuple[str, int]:
    """Return the key id and the offset just past the nonce."""
    if len(stored) < len(MAGIC) + 2 or stored[: len(MAGIC)] != MAGIC:
        raise TamperedDataError("not an encrypted payload (missing header)")
    version = stored[len(MAGIC)]
    if version != FORMAT_VERSION:
        raise TamperedDataError(f"unknown encrypted payload format version {version}")
    id_length = stored[len(MAGIC) + 1]
    id_start = len(MAGIC) + 2
    header_end = id_start + id_length + NONCE_BYTES
    if id_length == 0 or len(stored) < header_end:
        raise TamperedDataError("encrypted payload header is truncated")
    try:
        key_id = stored[id_start : id_start + id_length].decode("ascii")
    except UnicodeDecodeError:
        raise TamperedDataError("encrypted payload header has a malformed key id") from None
    return key_id, header_end
