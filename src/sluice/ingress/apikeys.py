"""API keys: created once, stored as a hash, verified with a short in-memory cache.

A key reads ``sk_<id>_<secret>``: the id finds the record, the secret is checked against its
SHA-256. The secret is 32 random bytes, so a fast hash is enough (no password-style stretching
is needed when the input cannot be guessed). Verified keys are cached for ``cache_ttl_s`` to
keep the database off the hot path; a revocation made by another process therefore takes
effect within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence

from sluice.errors import AuthError, NotFoundError
from sluice.store.base import ApiKeyRecord, Store

_PREFIX = "sk_"


def hash_secret(secret: str) -> str:
    """The stored form of a key's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_api_key(
    store: Store, tenant: str, roles: Sequence[str] = ("runner",)
) -> tuple[ApiKeyRecord, str]:
    """Store a new key for ``tenant``; return its record and the full key (shown once)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    record = ApiKeyRecord(key_id, tenant, tuple(roles), hash_secret(secret), time.time())
    await store.put_api_key(record)
    return record, f"{_PREFIX}{key_id}_{secret}"


class ApiKeyAuth:
    """Turns an ``Authorization: Bearer`` header into the key's record, or an AuthError."""

    def __init__(self, store: Store, cache_ttl_s: float = 30.0, cache_size: int = 10_000) -> None:
        self._store = store
        self._ttl = cache_ttl_s
        self._size = cache_size
        self._cache: OrderedDict[str, tuple[ApiKeyRecord, float]] = OrderedDict()

    async def authenticate(self, authorization: str | None) -> ApiKeyRecord:
        """Verify the header; revoked, unknown and malformed keys all fail alike."""
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("send an API key as 'Authorization: Bearer sk_...'")
        token = authorization[len("Bearer ") :].strip()
        if not token.startswith(_PREFIX) or token.count("_") < 2:
            raise AuthError("invalid API key")
        key_id, _, secret = token[len(_PREFIX) :].partition("_")
        cached = self._cache.get(key_id)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            record = cached[0]
            self._cache.move_to_end(key_id)
        else:
            try:
                record = await self._store.get_api_key(key_id)
            except NotFoundError:
                raise AuthError("invalid API key") from None
            self._cache[key_id] = (record, now + self._ttl)
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        if record.revoked_at is not None or not hmac.compare_digest(
            record.secret_hash, hash_secret(secret)
        ):
            raise AuthError("invalid API key")
        return record
