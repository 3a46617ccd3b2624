"""Reloading the way in without a restart: ``SIGHUP`` or ``POST /v1/admin/reload``.

What ingress is configured with (sources: their workflow, tenant, secrets and mapping; rate
limits; body limits; the idempotency window) is read again from the app's ``sluice.yaml`` and
the environment, checked whole, and applied to the requests that arrive from then on. A file
with a problem changes nothing: the settings in force stay, and the problems are logged (and
answered, for the admin call). Workflows, pools, models and stores are not reloaded: changing
those is a release (``docs/cli.md``), which needs new processes.
"""

from __future__ import annotations

import logging

from sluice.config import load_settings
from sluice.ingress.intake import Ingress
from sluice.ingress.settings import parse_ingress

log = logging.getLogger("sluice.reload")


def reload_ingress(ingress: Ingress) -> list[str]:
    """Re-read the app's configuration and apply its ingress part; return what changed.

    Raises :class:`~sluice.errors.ConfigError` (nothing applied) when the file is invalid.
    """
    settings = load_settings(ingress.app.settings.app_dir)
    changes = ingress.reload(parse_ingress(settings))
    log.info("configuration reloaded: %s", "; ".join(changes) or "no change")
    return changes
