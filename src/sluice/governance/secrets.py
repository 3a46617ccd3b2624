"""Secrets: named values kept encrypted in the store, versioned, reached by name.

Envelope encryption with the at-rest keyring (:mod:`sluice.guard.crypto`): each version of a
secret gets a fresh 256-bit data key; the value is sealed under it (AES-256-GCM, the secret's
name as associated data, so a value moved under another name fails to open), and the data key
is sealed (wrapped) by the keyring's active key with the payload codec, whose header names the
key that wrapped it. Rotating the keyring (:meth:`Secrets.rotate`) re-wraps the data keys with
the new active key; the sealed values are not touched and every version stays readable.

A value never leaves this module but as a :class:`SecretValue`, whose ``repr`` and ``str`` do
not show it: a secret that reaches a log line, a span attribute or an error message by mistake
prints as ``SecretValue(NAME@VERSION)``. Metadata (names, versions, who set them, when, the
wrapping key's id) is what ``list`` and ``show`` return; no command or endpoint prints a value.

Steps reach secrets through the ``secrets`` service::

    async def call_partner(ctx, data):
        token = await ctx.service("secrets").get("partner_token")   # a SecretValue
        headers = {"Authorization": f"Bearer {token.reveal()}"}

and ``sluice.yaml`` names them as ``${secret:NAME}`` in any string value (a model's
``api_key``, a gateway deployment's ``api_key``), resolved once when the app is built
(:func:`resolve_references`).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sluice.errors import ConfigError, NotFoundError
from sluice.guard.crypto import (
    KEY_BYTES,
    NONCE_BYTES,
    AesGcmCodec,
    RandomPool,
    TamperedDataError,
    key_id_of,
)
from sluice.store.managed import ManagedStore, SecretVersion

#: What a secret may be called: it appears in config references and in the audit trail.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127}")
#: ``${secret:NAME}`` inside a string value of ``sluice.yaml``.
REFERENCE = re.compile(r"\$\{secret:([^}]*)\}")
#: The largest value accepted: secrets are keys and tokens, not documents.
MAX_VALUE_BYTES = 64 * 1024
#: How long a decrypted value is reused in this process before the store is read again.
CACHE_TTL_S = 30.0
#: Decrypted values kept in this process at most (least recently used dropped first).
CACHE_ENTRIES = 256


class SecretsUnavailableError(ConfigError):
    """Secrets cannot be used: no encryption keyring is configured."""


class SecretValue:
    """A secret's value that does not print itself: call :meth:`reveal` where it is used."""

    __slots__ = ("_label", "_value")

    def __init__(self, value: str, label: str) -> None:
        self._value = value
        self._label = label

    def reveal(self) -> str:
        """The value itself: pass it straight to where it is needed (a header, a client)."""
        return self._value

    def __repr__(self) -> str:
        return f"SecretValue({self._label})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> Any:
        raise TypeError("a SecretValue is not picklable: reveal() it where it is used")


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """What may be shown of one version: never its value."""

    version: int
    created_at: float
    created_by: str
    key_id: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"version": self.version, "created_at": self.created_at,
                "created_by": self.created_by, "key_id": self.key_id}  # fmt: skip


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """A secret's metadata: its name and its versions, oldest first."""

    name: str
    versions: tuple[VersionInfo, ...]

    @property
    def latest(self) -> VersionInfo:
        """The version a reference without ``@VERSION`` reads."""
        return self.versions[-1]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the audit trail's before/after of a change)."""
        latest = self.latest
        return {"name": self.name, "latest": latest.version, "updated_at": latest.created_at,
                "updated_by": latest.created_by, "key_id": latest.key_id,
                "versions": [v.as_dict() for v in self.versions]}  # fmt: skip


def check_name(name: str) -> str:
    """``name`` if it may name a secret, else a ConfigError saying what it must match."""
    if not NAME.fullmatch(name):
        raise ConfigError(f"secret name {name!r} must match {NAME.pattern}")
    return name


def _info(name: str, versions: Iterable[SecretVersion]) -> SecretInfo:
    infos = (
        VersionInfo(v.version, v.created_at, v.created_by, key_id_of(v.wrapped_key))
        for v in versions
    )
    return SecretInfo(name, tuple(infos))


class Secrets:
    """The ``secrets`` service: set, read, list, rotate and delete secrets in the store.

    ``codec`` is the at-rest codec of the app's keyring (``encryption:`` or
    ``SLUICE_ENCRYPTION_KEYS``); without one every operation that needs a key raises
    :class:`SecretsUnavailableError`, while listing metadata still works.
    """

    def __init__(
        self,
        store: ManagedStore,
        codec: AesGcmCodec | None,
        *,
        cache_ttl_s: float = CACHE_TTL_S,
        cache_entries: int = CACHE_ENTRIES,
    ) -> None:
        self._store = store
        self._codec = codec
        self._ttl = cache_ttl_s
        self._max = cache_entries
        self._cache: OrderedDict[tuple[str, int | None], tuple[float, SecretValue]] = OrderedDict()
        self._random = RandomPool()

    def _keys(self) -> AesGcmCodec:
        if self._codec is None:
            raise SecretsUnavailableError(
                "secrets need an encryption keyring: set SLUICE_ENCRYPTION_KEYS and"
                " SLUICE_ENCRYPTION_ACTIVE (or the encryption: section)"
            )
        return self._codec

    # writes --------------------------------------------------------------------------------
    async def set(self, name: str, value: str, actor: str) -> int:
        """Store a new version of ``name`` holding ``value``; return its version number."""
        check_name(name)
        data = value.encode("utf-8")
        if not data:
            raise ConfigError(f"secret {name!r}: the value is empty")
        if len(data) > MAX_VALUE_BYTES:
            raise ConfigError(
                f"secret {name!r}: the value is {len(data)} bytes, over {MAX_VALUE_BYTES}"
            )
        codec = self._keys()
        data_key = self._random.take(KEY_BYTES)
        nonce = self._random.take(NONCE_BYTES)
        sealed = nonce + AESGCM(data_key).encrypt(nonce, data, _aad(name))
        version = await self._store.put_secret(
            name, codec.encode(data_key), sealed, time.time(), actor
        )
        self._forget(name)
        return version

    async def delete(self, name: str) -> int:
        """Remove every version of ``name``; NotFoundError when there is none."""
        removed = await self._store.delete_secret(check_name(name))
        if not removed:
            raise NotFoundError(f"no secret {name!r}")
        self._forget(name)
        return removed

    async def rotate(self) -> int:
        """Re-wrap every data key not wrapped by the keyring's active key; the count re-wrapped.

        Values are not decrypted or re-sealed: only the data keys are opened (with whichever
        key of the keyring wrapped them) and wrapped again.
        """
        codec = self._keys()

        def rewrap(wrapped: bytes) -> bytes | None:
            return codec.reencrypt(wrapped) if codec.needs_reencryption(wrapped) else None

        changed = await self._store.rewrap_secrets(rewrap)
        self._cache.clear()
        return changed

    # reads ---------------------------------------------------------------------------------
    async def get(self, name: str, version: int | None = None) -> SecretValue:
        """The value of ``name`` (its latest version, or ``version``), decrypted.

        Kept in this process for ``cache_ttl_s`` (a new version set elsewhere is seen within
        that time); NotFoundError names the secret, never a value.
        """
        key = (name, version)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            self._cache.move_to_end(key)
            return hit[1]
        codec = self._keys()
        versions = await self._store.secret_versions(check_name(name))
        if version is not None:
            versions = [v for v in versions if v.version == version]
        if not versions:
            which = name if version is None else f"{name}@{version}"
            raise NotFoundError(f"no secret {which!r}")
        stored = versions[-1]
        value = SecretValue(_open(codec, stored), f"{name}@{stored.version}")
        self._cache[key] = (now, value)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return value

    async def list(self) -> list[SecretInfo]:
        """Every secret's metadata, by name."""
        by_name: dict[str, list[SecretVersion]] = {}
        for stored in await self._store.secret_versions():
            by_name.setdefault(stored.name, []).append(stored)
        return [_info(name, versions) for name, versions in sorted(by_name.items())]

    async def show(self, name: str) -> SecretInfo:
        """One secret's metadata; NotFoundError when there is none."""
        versions = await self._store.secret_versions(check_name(name))
        if not versions:
            raise NotFoundError(f"no secret {name!r}")
        return _info(name, versions)

    async def find(self, name: str) -> SecretInfo | None:
        """:meth:`show`, or None when the secret does not exist (a change's "before")."""
        try:
            return await self.show(name)
        except NotFoundError:
            return None

    async def resolve(self, names: Iterable[str]) -> dict[str, SecretValue]:
        """The latest value of each of ``names``; one ConfigError naming every missing one."""
        found: dict[str, SecretValue] = {}
        missing: list[str] = []
        for name in sorted(set(names)):
            try:
                found[name] = await self.get(name)
            except NotFoundError:
                missing.append(name)
        if missing:
            raise ConfigError(
                "sluice.yaml names secrets that are not set",
                [f"${{secret:{name}}}: no such secret (sluice secret set {name})"
                 for name in missing],
            )  # fmt: skip
        return found

    def _forget(self, name: str) -> None:
        for key in [k for k in self._cache if k[0] == name]:
            del self._cache[key]


def _aad(name: str) -> bytes:
    return b"sluice-secret:" + name.encode("utf-8")


def _open(codec: AesGcmCodec, stored: SecretVersion) -> str:
    data_key = codec.decode(stored.wrapped_key)
    nonce, sealed = stored.value[:NONCE_BYTES], stored.value[NONCE_BYTES:]
    try:
        plain = AESGCM(data_key).decrypt(nonce, sealed, _aad(stored.name))
    except InvalidTag:
        raise TamperedDataError(
            f"secret {stored.name}@{stored.version} failed authentication: it was altered"
        ) from None
    return plain.decode("utf-8")


# references in sluice.yaml ---------------------------------------------------------------------
def references(value: Any) -> set[str]:
    """The secret names ``${secret:NAME}`` references in the strings of ``value`` (nested)."""
    found: set[str] = set()
    if isinstance(value, str):
        found.update(match.group(1) for match in REFERENCE.finditer(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            found |= references(item)
    elif isinstance(value, list | tuple):
        for item in value:
            found |= references(item)
    return found


def reference_problems(value: Any, path: str = "") -> list[str]:
    """A problem for each reference that names no valid secret name, with its path."""
    problems: list[str] = []
    if isinstance(value, str):
        problems += [
            f"{path}: ${{secret:{m.group(1)}}}: a secret name must match {NAME.pattern}"
            for m in REFERENCE.finditer(value)
            if not NAME.fullmatch(m.group(1))
        ]
    elif isinstance(value, Mapping):
        for key, item in value.items():
            problems += reference_problems(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            problems += reference_problems(item, f"{path}[{i}]")
    return problems


def substitute(value: Any, values: Mapping[str, SecretValue]) -> Any:
    """``value`` with each ``${secret:NAME}`` replaced by the secret (a copy; nested)."""
    if isinstance(value, str):
        return REFERENCE.sub(lambda m: values[m.group(1)].reveal(), value)
    if isinstance(value, Mapping):
        return {key: substitute(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, values) for item in value]
    if isinstance(value, tuple):
        return tuple(substitute(item, values) for item in value)
    return value


def redact(text: str, values: Mapping[str, SecretValue]) -> str:
    """``text`` with every secret value in ``values`` replaced by its ``${secret:NAME}``."""
    for name, value in values.items():
        if value.reveal():
            text = text.replace(value.reveal(), f"${{secret:{name}}}")
    return text


async def resolve_references(
    extra: Mapping[str, Any], secrets: Secrets
) -> tuple[dict[str, Any], dict[str, SecretValue]]:
    """The config sections ``extra`` with every ``${secret:NAME}`` replaced by its value, and
    the values used (to :func:`redact` them from any error the resolved config causes).

    Raises one ConfigError naming every malformed reference or missing secret.
    """
    problems = reference_problems(extra)
    if problems:
        raise ConfigError("sluice.yaml: malformed secret references", problems)
    names = references(extra)
    if not names:
        return dict(extra), {}
    values = await secrets.resolve(names)
    return dict(substitute(extra, values)), values
