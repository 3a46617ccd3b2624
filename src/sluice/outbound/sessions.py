"""The one constructor of pooled outbound HTTP sessions.

Every aiohttp session Sluice opens towards the outside (steps' egress, model endpoints, the
AI gateway's streaming relays) is made here, so a connection-level policy applies to all of
them at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import aiohttp


def client_session(
    limit: int,
    *,
    per_host: bool = True,
    headers: Mapping[str, str] | None = None,
    timeout: aiohttp.ClientTimeout | None = None,
    skip_auto_headers: Iterable[str] | None = None,
) -> aiohttp.ClientSession:
    """A session pooling at most ``limit`` connections (per host too, unless ``per_host``
    is false); must be called inside the running event loop."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit if per_host else 0)
    if timeout is None:
        return aiohttp.ClientSession(
            connector=connector, headers=headers, skip_auto_headers=skip_auto_headers
        )
    return aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout, skip_auto_headers=skip_auto_headers
    )
