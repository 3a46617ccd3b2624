"""Signed webhook deliveries: the headers of a Standard Webhooks POST, and the POST itself.

The ``deliver`` step (:mod:`sluice.steps.deliver`) decides what to send and where; this module
signs it and says, as a :class:`~sluice.errors.StepError`, whether a failure is worth another
try (5xx, 429 and lost connections are; other refusals are not).
"""

from __future__ import annotations

import aiohttp

from sluice.errors import StepError
from sluice.outbound.signing import decode_secret, sign


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery of ``body``, signed under the ``whsec_...`` ``secret``."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(decode_secret(secret), msg_id, timestamp, body),
    }


async def post_signed(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    tenant: str | None = None,
) -> int:
    """POST the signed body through an egress session (for ``tenant``'s allowlist); a
    StepError says whether trying again may help (an egress refusal never does)."""
    try:
        async with session.post(
            url, data=body, headers=headers, trace_request_ctx={"tenant": tenant}
        ) as resp:
            if resp.status >= 500 or resp.status == 429:
                after = resp.headers.get("retry-after")
                raise StepError(
                    f"deliver: {url} answered {resp.status}",
                    retry_after=float(after) if after and after.isdigit() else None,
                )
            if resp.status >= 400:
                raise StepError(f"deliver: {url} refused with {resp.status}", retryable=False)
            return resp.status
    except aiohttp.ClientError as exc:
        raise StepError(f"deliver: {url}: {type(exc).__name__}: {exc}") from exc
