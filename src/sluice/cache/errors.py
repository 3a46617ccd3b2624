"""Errors of the cache package, rooted at :class:`sluice.errors.SluiceError`.

::

    SluiceError
    └── ConfigError
        └── CacheConfigError    a cache bound or TTL that cannot be used
"""

from __future__ import annotations

from sluice.errors import ConfigError


class CacheConfigError(ConfigError):
    """A cache was configured with a bound or TTL that cannot be used."""
