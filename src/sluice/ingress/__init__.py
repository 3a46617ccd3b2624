"""The way in: webhooks and API runs become durable events or clear refusals.

:class:`Ingress` (in :mod:`sluice.ingress.intake`) owns the checks; :mod:`sluice.ingress.http`
translates HTTP to and from it. ``Gateway`` is the deprecated old name of :class:`Ingress`
("gateway" now means only the AI gateway, :mod:`sluice.ai_gateway`).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sluice.ingress.intake import Ingress

__all__ = ["Ingress"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the ingress pulls in the app, and its leaf modules (limits,
    # problems) are imported by layers below the app.
    if name in ("Ingress", "Gateway"):
        from sluice.ingress.intake import Ingress

        if name == "Gateway":
            warnings.warn(
                "sluice.ingress.Gateway is deprecated: use sluice.ingress.Ingress",
                DeprecationWarning,
                stacklevel=2,
            )
        return Ingress
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
