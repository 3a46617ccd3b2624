"""Standard Webhooks signing: the half both sides share.

A delivery is signed over ``{webhook-id}.{webhook-timestamp}.{body}`` with HMAC-SHA256 under a
shared secret (``whsec_`` + base64) and carries ``webhook-signature: v1,<base64>``. Sluice
signs its own deliveries with :func:`sign` (:mod:`sluice.outbound.webhooks`), and its ingress
checks senders' signatures with the same function
(:class:`~sluice.ingress.signatures.WebhookVerifier`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from sluice.errors import ConfigError

PREFIX = "whsec_"


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_...`` secret."""
    body = secret.removeprefix(PREFIX)
    try:
        key = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"webhook secret {secret[:10]}...: not base64") from exc
    if len(key) < 16:
        raise ConfigError("webhook secret: shorter than 16 bytes")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()
