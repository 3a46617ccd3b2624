"""Outbound HTTP for steps and alerts: the app's egress policy, named secrets, one session.

The policy (:mod:`sluice.outbound.policy`) comes from the ``outbound:`` section; the older
``egress: {allow: [...], timeout_s: N}`` section is still read, its hosts added to
``outbound.allow``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from sluice.config import AppSettings, unknown_problems
from sluice.errors import ConfigError, StepError
from sluice.outbound.policy import EgressDeniedError, EgressPolicy
from sluice.outbound.sessions import client_session


def allowed(url: str, allowlist: Collection[str]) -> bool:
    """Whether ``url`` is well formed and its host (or host:port) is on ``allowlist`` (the
    allowlist step of the egress policy only: the addresses are checked at connection)."""
    policy = EgressPolicy(allow=frozenset(allowlist))
    try:
        target = policy.admit(url, check_allowlist=False)
    except EgressDeniedError:
        return False
    return policy.allows(target.host, target.port)


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """``response``'s body, refused (StepError, not retryable) past ``limit`` bytes before
    more than that is buffered."""
    url = response.url
    if response.content_length is not None and response.content_length > limit:
        raise StepError(f"{url}: answer of {response.content_length} bytes exceeds {limit}",
                        retryable=False)  # fmt: skip
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise StepError(f"{url}: answer exceeds {limit} bytes", retryable=False)
    return bytes(body)


def app_policy(settings: AppSettings) -> EgressPolicy:
    """The app's egress policy: the ``outbound:`` section, plus the hosts of the older
    ``egress.allow`` list."""
    raw: Any = settings.extra.get("egress") or {}
    if not isinstance(raw, Mapping) or not isinstance(raw.get("allow", []), list):
        raise ConfigError("egress: expected {allow: [host or host:port, ...]}")
    unknown = unknown_problems(raw, ("allow", "timeout_s"), "egress.", "setting")
    if unknown:
        raise ConfigError("invalid egress section", unknown)
    outbound: Any = settings.extra.get("outbound")
    if "timeout_s" in raw and isinstance(outbound, Mapping | None):
        outbound = {"timeout_s": raw["timeout_s"], **(outbound or {})}
    return EgressPolicy.from_config(outbound, extra_allow=[str(h) for h in raw.get("allow", [])])


def configured_endpoints(settings: AppSettings) -> dict[str, str]:
    """``host:port`` of each configured model and AI gateway endpoint -> where it is set
    (``models.llm``, ``gateway.models.chat[0]``): each client may reach its own endpoint."""
    found: dict[str, str] = {}
    candidates: list[tuple[str, Any]] = []
    models = settings.extra.get("models")
    if isinstance(models, Mapping):
        candidates += [(f"models.{name}", entry) for name, entry in models.items()]
    gateway = settings.extra.get("gateway")
    groups = gateway.get("models") if isinstance(gateway, Mapping) else None
    if isinstance(groups, Mapping):
        for group, deployments in groups.items():
            if isinstance(deployments, list):
                candidates += [
                    (f"gateway.models.{group}[{i}]", d) for i, d in enumerate(deployments)
                ]
    for where, entry in candidates:
        url = entry.get("base_url") if isinstance(entry, Mapping) else None
        if not isinstance(url, str):
            continue
        try:
            target = EgressPolicy().admit(url, check_allowlist=False)
        except EgressDeniedError:
            continue  # the section's own check reports it
        found.setdefault(f"{target.host}:{target.port}", where)
    return found


@dataclass
class Egress:
    """The ``egress`` service: the app's egress policy, the secrets steps may name, and the
    session steps and alert posts call through (every request admitted by the policy)."""

    policy: EgressPolicy = field(default_factory=EgressPolicy)
    secrets: Mapping[str, str] = field(default_factory=dict)
    max_connections: int = 64
    _session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: AppSettings) -> Egress:
        """The app's policy (``outbound:``, ``egress:``); secrets are the SLUICE_* variables."""
        return cls(policy=app_policy(settings), secrets=dict(settings.env))

    @property
    def allow(self) -> frozenset[str]:
        """The app's allowlist (host or host:port patterns)."""
        return self.policy.allow

    @property
    def timeout_s(self) -> float:
        """The default time bound of one call."""
        return self.policy.timeout_s

    def session(self) -> aiohttp.ClientSession:
        """The shared session, created on first use inside the running loop."""
        if self._session is None or self._session.closed:
            self._session = client_session(self.max_connections, policy=self.policy,
                                           per_host=False)  # fmt: skip
        return self._session

    async def read(self, response: aiohttp.ClientResponse) -> bytes:
        """A response's body, at most the policy's ``max_response_bytes`` (a larger one is a
        StepError, not worth another try): steps read answers through this."""
        return await read_bounded(response, self.policy.max_response_bytes)

    async def aclose(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
