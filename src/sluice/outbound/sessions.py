"""The one constructor of pooled outbound HTTP sessions.

Every aiohttp session Sluice opens towards the outside (steps' egress, alert posts, model
endpoints, the AI gateway's streaming relays) is made here, under an
:class:`~sluice.outbound.policy.EgressPolicy`: the policy is a required argument, so no session
exists without one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import aiohttp

from sluice.outbound.connector import PolicyConnector, policy_trace
from sluice.outbound.policy import EgressPolicy


def client_session(
    limit: int,
    *,
    policy: EgressPolicy,
    per_host: bool = True,
    headers: Mapping[str, str] | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
    skip_auto_headers: Iterable[str] | None = None,
) -> aiohttp.ClientSession:
    """A session pooling at most ``limit`` connections (per host too, unless ``per_host``
    is false), every request admitted by ``policy`` and sent through its proxy, if any; the
    default timeout is the policy's. Must be called inside the running event loop."""
    connector = PolicyConnector(
        policy, limit=limit, limit_per_host=limit if per_host else 0, use_dns_cache=False
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers=headers,
        timeout=timeout or aiohttp.ClientTimeout(total=policy.timeout_s),
        skip_auto_headers=skip_auto_headers,
        trace_configs=[policy_trace(policy)],
        proxy=policy.proxy,
    )
