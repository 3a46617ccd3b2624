"""Which KV an app uses: ``kv:`` in ``sluice.yaml`` or ``SLUICE_KV``, read at the edge.

``memory://`` (the default) keeps state in the process. ``redis://HOST:PORT/DB`` shares it
through Redis, falling back to in-process state while Redis is away (``?fallback=0`` turns the
fallback off: calls then raise :class:`~sluice.kv.base.KVUnavailableError`). ``?prefix=NAME:``
namespaces the keys (default ``sluice:``); ``?connect_timeout_ms=`` and ``?timeout_ms=`` bound
each connection attempt and each call (default 250 and 500 ms).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sluice.config import AppSettings
from sluice.errors import ConfigError, MissingExtraError
from sluice.kv.base import KV
from sluice.kv.fallback import FallbackKV
from sluice.kv.memory import MemoryKV


def kv_url(settings: AppSettings) -> str:
    """The KV URL of the app (``SLUICE_KV`` already applied by the settings loader)."""
    return settings.kv


def build_kv(url: str) -> KV:
    """The KV named by ``url``; nothing connects until ``open()``."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryKV()
    if parts.scheme in ("redis", "rediss"):
        query = dict(parse_qsl(parts.query))
        prefix = query.pop("prefix", "sluice:")
        fallback = query.pop("fallback", "1") not in ("0", "false", "no")
        # Timeouts for a Redis farther away, or slower, than one on the same network.
        connect_ms = _millis(query.pop("connect_timeout_ms", "250"), "connect_timeout_ms")
        timeout_ms = _millis(query.pop("timeout_ms", "500"), "timeout_ms")
        redis_url = urlunsplit(parts._replace(query=urlencode(query)))
        try:  # the redis package is the ``redis`` extra: only apps that use it need it
            from sluice.kv.redis import RedisKV
        except ModuleNotFoundError as exc:
            raise MissingExtraError("kv: a redis:// URL", "redis", "redis") from exc
        redis_kv = RedisKV(
            redis_url,
            prefix=prefix,
            connect_timeout_s=connect_ms / 1000,
            timeout_s=timeout_ms / 1000,
        )
        return FallbackKV(redis_kv, name=f"redis at {redis_kv.where}") if fallback else redis_kv
    raise ConfigError(f"kv: unsupported URL {url!r} (expected memory:// or redis://HOST:PORT/DB)")


def _millis(value: str, name: str) -> float:
    """A positive number of milliseconds from the KV URL's ``name`` parameter."""
    try:
        millis = float(value)
    except ValueError:
        millis = -1.0
    if not 0 < millis <= 60_000:
        raise ConfigError(
            f"kv: {name} must be a number of milliseconds in (0, 60000], got {value!r}"
        )
    return millis
