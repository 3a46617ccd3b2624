"""Guards on data: PII masking at ingress and encryption of payloads at rest.

The public surface is the names below; the modules behind them may change.
"""

from sluice.guard.crypto import (
    AesGcmCodec,
    EncryptionError,
    Keyring,
    KeyringError,
    TamperedDataError,
    UnknownKeyError,
    key_id_of,
    new_key,
)
from sluice.guard.pii import DEFAULT_TYPES, Entity, MaskResult, MaskSession, PiiMasker
from sluice.guard.recognizers import PiiType, Recognizer

__all__ = [
    "DEFAULT_TYPES",
    "AesGcmCodec",
    "EncryptionError",
    "Entity",
    "Keyring",
    "KeyringError",
    "MaskResult",
    "MaskSession",
    "PiiMasker",
    "PiiType",
    "Recognizer",
    "TamperedDataError",
    "UnknownKeyError",
    "key_id_of",
    "new_key",
]
