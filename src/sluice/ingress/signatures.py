"""Webhook signatures in the Standard Webhooks scheme, checked.

The sender signs ``{webhook-id}.{webhook-timestamp}.{body}`` with HMAC-SHA256 under a shared
secret (``whsec_`` + base64) and sends ``webhook-signature: v1,<base64> [v1,<base64> ...]``.
Several signatures let a sender sign with an old and a new secret while secrets rotate; any
one valid signature under any configured secret passes. Timestamps more than ``tolerance_s``
away from now are refused, so a captured request cannot be replayed later. Signing itself is
:mod:`sluice.outbound.signing`, shared with Sluice's own deliveries.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Iterable, Mapping

from sluice.errors import AuthError, ConfigError
from sluice.ingress.limits import RequestError
from sluice.outbound.signing import decode_secret, sign

TOLERANCE_S = 300
_MAX_STAMP_DIGITS = 12  # seconds since the epoch: 10 digits until the year 2286
_STAMP = re.compile(f"[1-9][0-9]{{0,{_MAX_STAMP_DIGITS - 1}}}")


class WebhookVerifier:
    """Checks Standard Webhooks headers against one source's secrets."""

    def __init__(self, secrets: Iterable[str], tolerance_s: int = TOLERANCE_S) -> None:
        self._keys = [decode_secret(s) for s in secrets]
        if not self._keys:
            raise ConfigError("a webhook source needs at least one secret")
        self._tolerance_s = tolerance_s

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str:
        """Return the delivery's ``webhook-id`` when the signature is valid; else AuthError.

        A timestamp that is not plain digits is a malformed request
        (:class:`~sluice.ingress.limits.RequestError`), not a bad credential.
        """
        msg_id = headers.get("webhook-id")
        stamp = headers.get("webhook-timestamp")
        given = headers.get("webhook-signature")
        if not msg_id or not stamp or not given:
            raise AuthError("missing webhook-id, webhook-timestamp or webhook-signature header")
        # Digits only, no leading zero: int() would also take signs, spaces, underscores and
        # other scripts' digits, so the signer and this check could read one header as two
        # different strings, and a captured signature would verify under another spelling.
        if _STAMP.fullmatch(stamp) is None:
            raise RequestError(
                f"webhook-timestamp: seconds since the epoch as 1 to {_MAX_STAMP_DIGITS} ASCII "
                "digits without a leading zero, nothing else",
                kind="bad-header",
            )
        timestamp = int(stamp)
        if abs((time.time() if now is None else now) - timestamp) > self._tolerance_s:
            raise AuthError(f"webhook-timestamp is more than {self._tolerance_s} s from now")
        candidates = [
            part.split(",", 1)[1].encode() for part in given.split() if part.startswith("v1,")
        ]
        for key in self._keys:
            expected = sign(key, msg_id, timestamp, body).split(",", 1)[1].encode()
            # Compare against every candidate: constant time per comparison, no early exit
            # that would tell an attacker which signature nearly matched.
            if any(hmac.compare_digest(expected, c) for c in candidates):
                return msg_id
        raise AuthError("no valid webhook signature")
