"""The public API of ``sluice.guard`` is exactly what its ``__all__`` lists."""

from __future__ import annotations

import sluice.guard


def test_exported_names() -> None:
    """The exported names are pinned; changing them is a decision."""
    assert sorted(sluice.guard.__all__) == [
        "AesGcmCodec",
        "DEFAULT_TYPES",
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
    for name in sluice.guard.__all__:
        assert hasattr(sluice.guard, name)
