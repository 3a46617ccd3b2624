"""Deprecated home of the ingress: use :class:`sluice.ingress.Ingress`.

The class was ``Gateway`` here until "gateway" came to mean only the AI gateway
(:mod:`sluice.ai_gateway`); the old name and import path keep working for one release, with a
:class:`DeprecationWarning` when ``Gateway`` is used.
"""

from __future__ import annotations

import warnings
from typing import Any

from sluice.ingress.intake import API_SOURCE, Ingress

__all__ = ["API_SOURCE", "Ingress"]


def __getattr__(name: str) -> Any:
    if name == "Gateway":
        warnings.warn(
            "sluice.ingress.gateway.Gateway is deprecated: use sluice.ingress.Ingress",
            DeprecationWarning,
            stacklevel=2,
        )
        return Ingress
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
