"""Outbound HTTP for steps and alerts: an allowlist of hosts, named secrets, one pooled session."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from sluice.config import AppSettings
from sluice.errors import ConfigError
from sluice.outbound.sessions import client_session


def allowed(url: str, allowlist: Collection[str]) -> bool:
    """Whether ``url``'s host (or host:port) is on the allowlist."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname
    return host in allowlist or f"{host}:{parts.port}" in allowlist


@dataclass
class Egress:
    """The ``egress`` service: which hosts steps may call, and with which secrets."""

    allow: frozenset[str] = frozenset()
    secrets: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0
    max_connections: int = 64
    _session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: AppSettings) -> Egress:
        """Read ``egress: {allow: [...], timeout_s: N}``; secrets are the SLUICE_* variables."""
        raw: Any = settings.extra.get("egress") or {}
        if not isinstance(raw, Mapping) or not isinstance(raw.get("allow", []), list):
            raise ConfigError("egress: expected {allow: [host or host:port, ...]}")
        return cls(
            allow=frozenset(str(h) for h in raw.get("allow", [])),
            secrets=dict(settings.env),
            timeout_s=float(raw.get("timeout_s", 10.0)),
        )

    def session(self) -> aiohttp.ClientSession:
        """The shared session, created on first use inside the running loop."""
        if self._session is None or self._session.closed:
            self._session = client_session(
                self.max_connections,
                per_host=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            )
        return self._session

    async def aclose(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
