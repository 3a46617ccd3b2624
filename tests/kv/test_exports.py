"""The public surface of ``sluice.kv`` is exactly what it says."""

from __future__ import annotations

import sluice.kv


def test_exported_names() -> None:
    """Adding or removing a public name is a deliberate change to this list."""
    assert sorted(sluice.kv.__all__) == [
        "FallbackKV",
        "KV",
        "KVError",
        "KVRateLimiter",
        "KVUnavailableError",
        "MemoryKV",
        "RedisKV",
        "TokenGrant",
        "build_kv",
        "kv_url",
    ]
    for name in sluice.kv.__all__:
        assert getattr(sluice.kv, name) is not None
