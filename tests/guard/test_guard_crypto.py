"""Encryption at rest: round trips, rotation, tampering, unknown keys, keyring configuration."""

from __future__ import annotations

import base64
import os
import threading

import pytest

from sluice.errors import ConfigError, SluiceError, StoreError
from sluice.guard import (
    AesGcmCodec,
    EncryptionError,
    Keyring,
    KeyringError,
    TamperedDataError,
    UnknownKeyError,
    key_id_of,
    new_key,
)
from sluice.guard.crypto import RandomPool
from sluice.store.codec import PayloadCodec


def keyring(active: str, *ids: str) -> Keyring:
    """A keyring with fresh keys for ``ids`` (and ``active``)."""
    return Keyring.from_base64({kid: new_key() for kid in {active, *ids}}, active)


class TestRoundTrip:
    """Encode then decode gives the plaintext back."""

    @pytest.mark.parametrize(
        "plaintext", [b"", b"{}", b'{"text": "where is my card?"}', bytes(range(256)) * 100]
    )
    def test_round_trip(self, plaintext: bytes) -> None:
        """Any payload, empty and large included."""
        codec = AesGcmCodec(keyring("k1"))
        stored = codec.encode(plaintext)
        assert plaintext not in stored or not plaintext
        assert codec.decode(stored) == plaintext

    def test_is_a_payload_codec(self) -> None:
        """The codec satisfies the store's protocol."""
        codec: PayloadCodec = AesGcmCodec(keyring("k1"))
        assert codec.decode(codec.encode(b"x")) == b"x"

    def test_nonce_is_fresh(self) -> None:
        """The same plaintext twice gives two different ciphertexts."""
        codec = AesGcmCodec(keyring("k1"))
        assert codec.encode(b"same") != codec.encode(b"same")

    def test_header(self) -> None:
        """The stored bytes name the key that sealed them."""
        stored = AesGcmCodec(keyring("2026-11")).encode(b"x")
        assert stored.startswith(b"SLE\x01\x072026-11")
        assert key_id_of(stored) == "2026-11"


class TestRotation:
    """Old keys still decrypt; new payloads use the active key."""

    def test_rotate(self) -> None:
        """After rotation old payloads decode, need re-encryption and re-encrypt to the new key."""
        old_key, new = new_key(), new_key()
        before = AesGcmCodec(Keyring.from_base64({"old": old_key}, "old"))
        stored = before.encode(b"payload")
        after = AesGcmCodec(Keyring.from_base64({"old": old_key, "new": new}, "new"))
        assert after.decode(stored) == b"payload"
        assert after.needs_reencryption(stored)
        rewritten = after.reencrypt(stored)
        assert key_id_of(rewritten) == "new"
        assert not after.needs_reencryption(rewritten)
        assert after.decode(rewritten) == b"payload"

    def test_plaintext_needs_encryption(self) -> None:
        """Payloads written before encryption was enabled are reported for rewriting."""
        assert AesGcmCodec(keyring("k1")).needs_reencryption(b'{"plain": true}')

    def test_dropped_key_is_unknown(self) -> None:
        """Once a key leaves the keyring, its payloads raise UnknownKeyError naming it."""
        stored = AesGcmCodec(keyring("old")).encode(b"x")
        with pytest.raises(UnknownKeyError, match="'old'") as info:
            AesGcmCodec(keyring("new")).decode(stored)
        assert info.value.key_id == "old"


class TestTampering:
    """Any change to stored bytes is detected."""

    def test_every_byte_is_authenticated(self) -> None:
        """Flipping any single byte (header, nonce, ciphertext, tag) fails to decode."""
        codec = AesGcmCodec(keyring("k1"))
        stored = codec.encode(b"secret payload")
        for index in range(len(stored)):
            altered = bytearray(stored)
            altered[index] ^= 0x01
            with pytest.raises(EncryptionError):
                codec.decode(bytes(altered))

    def test_same_id_other_key(self) -> None:
        """A payload sealed by another key under the same id fails authentication."""
        stored = AesGcmCodec(keyring("k1")).encode(b"x")
        with pytest.raises(TamperedDataError, match="altered"):
            AesGcmCodec(keyring("k1")).decode(stored)

    @pytest.mark.parametrize(
        "stored", [b"", b"SLE", b"plain json", b"SLE\x02\x01k" + bytes(40), b"SLE\x01\x05k1"]
    )
    def test_malformed(self, stored: bytes) -> None:
        """Truncated, foreign or other-version bytes raise TamperedDataError."""
        with pytest.raises(TamperedDataError):
            AesGcmCodec(keyring("k1")).decode(stored)

    def test_truncated_tag(self) -> None:
        """Cutting the tag off is detected."""
        codec = AesGcmCodec(keyring("k1"))
        with pytest.raises(TamperedDataError):
            codec.decode(codec.encode(b"")[:-1])

    def test_errors_are_rooted(self) -> None:
        """Decryption errors are store errors, under SluiceError."""
        assert issubclass(TamperedDataError, StoreError)
        assert issubclass(UnknownKeyError, SluiceError)


class TestKeyring:
    """Keyring configuration errors are clear and complete."""

    def test_new_key_is_256_bits(self) -> None:
        """new_key gives base64 of 32 random bytes."""
        assert len(base64.b64decode(new_key())) == 32
        assert new_key() != new_key()

    def test_problems_listed(self) -> None:
        """A short key, an unknown active id and bad base64 are all reported."""
        with pytest.raises(KeyringError) as info:
            Keyring({"short": b"x" * 16, "bad id!": b"x" * 32}, "missing")
        assert isinstance(info.value, ConfigError)
        text = str(info.value)
        assert "32 bytes" in text
        assert "missing" in text
        assert "bad id!" in text
        with pytest.raises(KeyringError, match="base64"):
            Keyring.from_base64({"k1": "not base64!"}, "k1")

    def test_keys_are_frozen_and_hidden(self) -> None:
        """The keyring copies its keys and never prints them."""
        keys = {"k1": b"k" * 32}
        ring = Keyring(keys, "k1")
        keys["k1"] = b"z" * 32
        assert ring.keys["k1"] == b"k" * 32
        assert "kkkk" not in repr(ring)


def _nonces(codec: AesGcmCodec, count: int) -> list[bytes]:
    """The nonces of ``count`` fresh encodings (the 12 bytes after the header's key id)."""
    out = []
    for _ in range(count):
        stored = codec.encode(b"{}")
        start = 5 + stored[4]
        out.append(stored[start : start + 12])
    return out


class TestNoncesAcrossFork:
    """A forked child must not reuse the nonces its parent has buffered but not used yet."""

    def test_parent_and_child_nonces_never_collide(self) -> None:
        """Parent and child each seal 3,000 payloads after a real os.fork(): no nonce shared."""
        codec = AesGcmCodec(keyring("k1"))
        before = _nonces(codec, 10)  # the pool now holds thousands of unread nonces
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report its nonces, then leave without running pytest's exit
            try:
                os.close(read_end)
                with os.fdopen(write_end, "wb") as out:
                    out.write(b"".join(_nonces(codec, 3000)))
            finally:
                os._exit(0)
        os.close(write_end)
        parent = _nonces(codec, 3000)
        with os.fdopen(read_end, "rb") as pipe:
            raw = pipe.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        child = [raw[i : i + 12] for i in range(0, len(raw), 12)]
        assert len(child) == 3000
        assert len(set(child)) == 3000
        assert len(set(parent)) == 3000
        assert not set(child) & set(parent)
        assert not set(child) & set(before)

    def test_threads_never_share_a_nonce(self) -> None:
        """Eight threads drawing from one pool at once get distinct bytes."""
        pool = RandomPool(block=1200)  # small blocks: refills race with reads
        seen: list[bytes] = []
        lock = threading.Lock()

        def draw() -> None:
            mine = [pool.take(12) for _ in range(2000)]
            with lock:
                seen.extend(mine)

        threads = [threading.Thread(target=draw) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(seen) == 16_000
        assert len(set(seen)) == 16_000
