"""API keys: created once, stored as a hash, verified with a short in-memory cache.

A key reads ``sk_<id>_<secret>``: the id finds the record, the secret is checked against its
SHA-256. The secret is 32 random bytes, so a fast hash is enough (no password-style stretching
is needed when the input cannot be guessed). Verified keys are cached for ``cache_ttl_s`` to
keep the database off the hot path. Revocation reaches every process through the store: each
revocation bumps a generation, which the cache reads at most every ``check_every_s`` (one
primary-key read for all requests of that interval) and drops every cached key when it moved,
so a key revoked anywhere is refused everywhere within that interval plus one read. When the
store cannot be read, cached keys keep working until their own time is up (then they must be
read again, and fail): a store this process cannot reach bounds the lag by the cache time.

A key may carry an expiry time, checked on every request against the clock (no cache delay),
and roles: ``runner`` (the default: runs workflows as its tenant) and ``operator`` (also sees
the whole deployment, e.g. every workflow's guards in ``/v1/status``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime

from sluice.errors import AuthError, ConfigError, NotFoundError, StoreError
from sluice.store.base import ApiKeyRecord, IngressStore

log = logging.getLogger("sluice.ingress")
_PREFIX = "sk_"
_WARN_EVERY_S = 10.0
RUNNER_ROLE = "runner"
OPERATOR_ROLE = "operator"
#: The roles a key may be given today; a later access-control scheme may add more.
ROLES = (RUNNER_ROLE, OPERATOR_ROLE)


def hash_secret(secret: str) -> str:
    """The stored form of a key's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def is_operator(record: ApiKeyRecord) -> bool:
    """Whether the key may see the whole deployment rather than its tenant's share."""
    return OPERATOR_ROLE in record.roles


def expiry_text(ts: float) -> str:
    """An expiry time as people read it (UTC, ISO 8601, to the second)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def create_api_key(
    store: IngressStore,
    tenant: str,
    roles: Sequence[str] = (RUNNER_ROLE,),
    expires_at: float | None = None,
) -> tuple[ApiKeyRecord, str]:
    """Store a new key for ``tenant``; return its record and the full key (shown once)."""
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ConfigError(f"unknown role(s) {', '.join(unknown)} (known: {', '.join(ROLES)})")
    now = time.time()
    if expires_at is not None and expires_at <= now:
        raise ConfigError(f"the expiry time {expiry_text(expires_at)} has passed")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    record = ApiKeyRecord(
        key_id, tenant, tuple(roles), hash_secret(secret), now, expires_at=expires_at
    )
    await store.put_api_key(record)
    return record, f"{_PREFIX}{key_id}_{secret}"


class ApiKeyAuth:
    """Turns an ``Authorization: Bearer`` header into the key's record, or an AuthError."""

    def __init__(
        self,
        store: IngressStore,
        cache_ttl_s: float = 30.0,
        cache_size: int = 10_000,
        check_every_s: float = 0.25,
    ) -> None:
        self._store = store
        self._ttl = cache_ttl_s
        self._size = cache_size
        self._check_every = check_every_s
        self._cache: OrderedDict[str, tuple[ApiKeyRecord, float]] = OrderedDict()
        self._generation: int | None = None
        self._checked_at = float("-inf")
        self._checking: asyncio.Lock | None = None
        self._warned_at = float("-inf")

    async def authenticate(self, authorization: str | None) -> ApiKeyRecord:
        """Verify the header; revoked, unknown and malformed keys all fail alike."""
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("send an API key as 'Authorization: Bearer sk_...'")
        token = authorization[len("Bearer ") :].strip()
        if not token.startswith(_PREFIX) or token.count("_") < 2:
            raise AuthError("invalid API key")
        key_id, _, secret = token[len(_PREFIX) :].partition("_")
        now = time.monotonic()
        if now - self._checked_at >= self._check_every:
            await self._check_generation()
        cached = self._cache.get(key_id)
        if cached is not None and cached[1] > now:
            record = cached[0]
            self._cache.move_to_end(key_id)
        else:
            generation = self._generation
            try:
                record = await self._store.get_api_key(key_id)
            except NotFoundError:
                raise AuthError("invalid API key") from None
            # A revocation seen while the record was read may postdate it: do not keep it.
            if generation == self._generation:
                self._cache[key_id] = (record, now + self._ttl)
                if len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        if record.revoked_at is not None or not hmac.compare_digest(
            record.secret_hash, hash_secret(secret)
        ):
            raise AuthError("invalid API key")
        if record.expires_at is not None and record.expires_at <= time.time():
            raise AuthError(f"API key {record.id} expired at {expiry_text(record.expires_at)}")
        return record

    async def _check_generation(self) -> None:
        """Read the store's revocation generation; drop every cached key when it moved.

        One read serves every request of the interval: concurrent requests wait for it.
        """
        if self._checking is None:
            self._checking = asyncio.Lock()
        async with self._checking:
            if time.monotonic() - self._checked_at < self._check_every:
                return  # another request read it while this one waited
            try:
                generation = await self._store.api_key_generation()
            except StoreError as exc:
                self._checked_at = time.monotonic()  # retried next interval, not per request
                if self._checked_at - self._warned_at >= _WARN_EVERY_S:
                    self._warned_at = self._checked_at
                    log.warning("API keys: revocation check failed, cached keys kept: %s", exc)
                return
            if generation != self._generation:
                self._cache.clear()
                self._generation = generation
            self._checked_at = time.monotonic()
