"""Ed25519 keys for the audit trail's checkpoints, read from outside the store.

The private key comes from ``SLUICE_AUDIT_SIGNING_KEY`` (the base64 of a 32-byte seed) or the
file named by ``SLUICE_AUDIT_SIGNING_KEY_FILE`` (that base64 text, or a PKCS#8 PEM). Keeping it
out of the database is the point: whoever can rewrite the store cannot sign a checkpoint, so
a rewritten chain no longer matches the signed heads. Verifiers need only the public key
(``SLUICE_AUDIT_VERIFY_KEY``, base64 of its 32 raw bytes), or derive it from the private one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from sluice.errors import ConfigError

SIGNING_KEY_ENV = "SLUICE_AUDIT_SIGNING_KEY"
SIGNING_KEY_FILE_ENV = "SLUICE_AUDIT_SIGNING_KEY_FILE"
VERIFY_KEY_ENV = "SLUICE_AUDIT_VERIFY_KEY"
_RAW = serialization.Encoding.Raw
_RAW_PUBLIC = serialization.PublicFormat.Raw


def new_signing_key() -> str:
    """A fresh private key as the base64 text ``SLUICE_AUDIT_SIGNING_KEY`` takes."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode()


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name of a public key (16 hex digits of its SHA-256)."""
    return hashlib.sha256(public.public_bytes(_RAW, _RAW_PUBLIC)).hexdigest()[:16]


def public_text(public: Ed25519PublicKey) -> str:
    """A public key as the base64 text ``SLUICE_AUDIT_VERIFY_KEY`` takes."""
    return base64.b64encode(public.public_bytes(_RAW, _RAW_PUBLIC)).decode()


def _b64_32(text: str, where: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: not base64 text") from None
    if len(raw) != 32:
        raise ConfigError(f"{where}: {len(raw)} bytes; an Ed25519 key is 32")
    return raw


def parse_signing_key(text: str, where: str) -> Ed25519PrivateKey:
    """A private key from base64 seed text or a PKCS#8 PEM; ConfigError naming ``where``."""
    if "-----BEGIN" in text:
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except ValueError as exc:
            raise ConfigError(f"{where}: not a readable PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{where}: the PEM key is not an Ed25519 key")
        return key
    return Ed25519PrivateKey.from_private_bytes(_b64_32(text, where))


def signing_key_from_env(env: Mapping[str, str] | None = None) -> Ed25519PrivateKey | None:
    """The configured private key, or None when neither variable is set."""
    env = os.environ if env is None else env
    if env.get(SIGNING_KEY_ENV):
        return parse_signing_key(env[SIGNING_KEY_ENV], SIGNING_KEY_ENV)
    path = env.get(SIGNING_KEY_FILE_ENV)
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{SIGNING_KEY_FILE_ENV}: cannot read {path}: {exc}") from None
        return parse_signing_key(text, path)
    return None


def verify_key_from_env(env: Mapping[str, str] | None = None) -> Ed25519PublicKey | None:
    """The public key to check checkpoints with: ``SLUICE_AUDIT_VERIFY_KEY``, else the
    configured private key's; None when no key is configured."""
    env = os.environ if env is None else env
    if env.get(VERIFY_KEY_ENV):
        return Ed25519PublicKey.from_public_bytes(_b64_32(env[VERIFY_KEY_ENV], VERIFY_KEY_ENV))
    private = signing_key_from_env(env)
    return None if private is None else private.public_key()


def checkpoint_message(seq: int, head_hash: str, ts: float) -> bytes:
    """The bytes a checkpoint signs: the chain head at ``seq`` and when it was signed."""
    return f"sluice-audit-checkpoint\n{seq}\n{head_hash}\n{ts!r}".encode()


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    """A base64 signature of ``message``."""
    return base64.b64encode(key.sign(message)).decode()


def signature_valid(public: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) signs ``message`` under ``public``."""
    try:
        public.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
