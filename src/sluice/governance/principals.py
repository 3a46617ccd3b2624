"""Principals (users and service accounts), their bearer tokens, and authorization.

A token reads ``sp_<id>_<secret>``: the id finds the stored record, the secret is checked
against its SHA-256 (32 random bytes need no password stretching, as for API keys). API keys
(``sk_...``) keep working: :func:`principal_from_api_key` maps a key's ``runner`` or
``operator`` role onto the built-in role of the same name.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sluice.errors import AuthError, ConfigError, Forbidden, NotFoundError
from sluice.governance.permissions import Permission, permissions_of, role_named
from sluice.store.base import ApiKeyRecord, GovernanceStore, PrincipalRecord, TokenRecord

TOKEN_PREFIX = "sp_"  # noqa: S105 - the tokens' public prefix, not a secret
KINDS = ("user", "service")
#: The identity the command line acts as on a local store when ``--as`` names no one else.
LOCAL_ADMIN = "local-admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who acts: a user or a service account with built-in roles (deny by default)."""

    name: str
    kind: str
    roles: tuple[str, ...]
    id: str = ""
    disabled: bool = False

    @property
    def permissions(self) -> frozenset[Permission]:
        """Everything this principal may do (nothing when disabled)."""
        return frozenset() if self.disabled else permissions_of(self.roles)

    @classmethod
    def from_record(cls, record: PrincipalRecord) -> Principal:
        """The principal a stored record describes."""
        return cls(record.name, record.kind, record.roles, record.id,
                   record.disabled_at is not None)  # fmt: skip


def hash_token(secret: str) -> str:
    """The stored form of a token's (or API key's) secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def allowed(principal: Principal, permission: Permission) -> bool:
    """Whether ``principal`` holds ``permission``."""
    return permission in principal.permissions


def authorize(principal: Principal, permission: Permission) -> None:
    """Return when ``principal`` holds ``permission``; raise :class:`Forbidden` otherwise."""
    if permission not in principal.permissions:
        raise Forbidden(principal.name, permission.value)


def principal_from_api_key(record: ApiKeyRecord) -> Principal:
    """The principal an API key acts as: ``apikey:<id>``, a service account with the key's
    roles (``runner``, ``operator``) as built-in roles."""
    return Principal(f"apikey:{record.id}", "service", tuple(record.roles), record.id)


def local_admin(name: str = LOCAL_ADMIN) -> Principal:
    """The command line's identity on a local store: an admin named ``name``."""
    return Principal(name, "user", ("admin",))


async def create_principal(
    store: GovernanceStore, name: str, kind: str = "user", roles: Sequence[str] = ()
) -> Principal:
    """Store a new principal; ConfigError for a bad kind, role or a name in use."""
    if kind not in KINDS:
        raise ConfigError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    if not name or len(name) > 100 or name.startswith("apikey:"):
        raise ConfigError(f"name: {name!r} must be 1-100 characters, not starting 'apikey:'")
    for role in roles:
        role_named(role)
    record = PrincipalRecord(secrets.token_hex(8), name, kind, tuple(sorted(set(roles))),
                             time.time())  # fmt: skip
    if not await store.put_principal(record):
        raise ConfigError(f"name: a principal named {name!r} exists")
    return Principal.from_record(record)


async def issue_token(
    store: GovernanceStore, principal: Principal, expires_at: float | None = None
) -> tuple[TokenRecord, str]:
    """Store a new token for ``principal``; return its record and the token (shown once)."""
    if not principal.id:
        raise ConfigError(f"{principal.name!r} is not a stored principal")
    secret = secrets.token_urlsafe(32)
    record = TokenRecord(secrets.token_hex(6), principal.id, hash_token(secret), time.time(),
                         expires_at)  # fmt: skip
    await store.put_token(record)
    return record, f"{TOKEN_PREFIX}{record.id}_{secret}"


async def authenticate_token(store: GovernanceStore, token: str) -> Principal:
    """The principal an ``sp_...`` token belongs to; AuthError for any bad token alike."""
    if not token.startswith(TOKEN_PREFIX) or token.count("_") < 2:
        raise AuthError("invalid token")
    token_id, _, secret = token[len(TOKEN_PREFIX) :].partition("_")
    try:
        record = await store.get_token(token_id)
        owner = await store.principal_by_id(record.principal_id)
    except NotFoundError:
        raise AuthError("invalid token") from None
    if not hmac.compare_digest(record.secret_hash, hash_token(secret)):
        raise AuthError("invalid token")
    if record.revoked_at is not None:
        raise AuthError(f"token {record.id} was revoked")
    if record.expires_at is not None and record.expires_at <= time.time():
        raise AuthError(f"token {record.id} has expired")
    if owner.disabled_at is not None:
        raise AuthError(f"principal {owner.name!r} is disabled")
    return Principal.from_record(owner)
