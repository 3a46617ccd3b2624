"""The errors of environments and fixture files, rooted in :class:`~sluice.errors.SluiceError`."""

from __future__ import annotations

from sluice.errors import ConfigError, SluiceError


class EnvironmentSpecError(ConfigError):
    """An environment file that cannot be used; each problem names the file and the field."""


class EnvironmentStateError(SluiceError):
    """An environment that exists when it must not (or the reverse), or that could not be made
    or removed."""


class FixtureError(SluiceError):
    """A fixture file that cannot be read or written; the message names the file and line."""
