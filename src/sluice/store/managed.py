"""Managed configuration in the store: secret versions, prompt template versions, routing rules.

The store only keeps what it is given: a secret arrives already encrypted (its data key wrapped
by the keyring, its value sealed under the data key; :mod:`sluice.governance.secrets`), a
template as its YAML source under its content address, the routing rules as a JSON document.
Every change adds a row; nothing but ``delete_secret`` removes one, so each version stays
readable by the id that names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SecretVersion:
    """One version of a secret as stored: its wrapped data key and its sealed value."""

    name: str
    version: int
    wrapped_key: bytes
    value: bytes
    created_at: float
    created_by: str


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    """One version of a prompt template: ``name@version`` and the YAML it was pushed as."""

    name: str
    version: str
    source: str
    created_at: float
    created_by: str

    @property
    def id(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class RoutingRecord:
    """One version of the routing rules (a JSON document)."""

    version: int
    document: str
    created_at: float
    created_by: str


#: Given a wrapped data key, the key wrapped again (or None when it needs no change).
Rewrap = Callable[[bytes], bytes | None]


class ManagedStore(Protocol):
    """Versioned, managed configuration (one contract suite in ``tests/governance``)."""

    async def put_secret(
        self, name: str, wrapped_key: bytes, value: bytes, created_at: float, created_by: str
    ) -> int:
        """Add a version of ``name`` (the next number, from 1); return it."""
        ...

    async def secret_versions(self, name: str | None = None) -> list[SecretVersion]:
        """Every version of ``name`` (or of every secret), by name then version."""
        ...

    async def rewrap_secrets(self, rewrap: Rewrap) -> int:
        """Apply ``rewrap`` to every version's data key in one transaction; the count changed."""
        ...

    async def delete_secret(self, name: str) -> int:
        """Remove every version of ``name``; the number removed."""
        ...

    async def put_template(self, record: TemplateRecord) -> bool:
        """Add a template version; False (nothing written) when ``name@version`` exists."""
        ...

    async def get_template(self, name: str, version: str) -> TemplateRecord:
        """One version; :class:`~sluice.errors.NotFoundError` when the store lacks it."""
        ...

    async def list_templates(self, name: str | None = None) -> list[TemplateRecord]:
        """Every version of ``name`` (or of every template), by name then push time."""
        ...

    async def put_routing(self, document: str, created_at: float, created_by: str) -> int:
        """Add a version of the routing rules; return its number."""
        ...

    async def get_routing(self) -> RoutingRecord | None:
        """The latest routing rules, or None when none were ever set."""
        ...
