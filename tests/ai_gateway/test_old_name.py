"""``sluice.gateway``, the AI gateway's old name, still imports, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import pytest

import sluice.ai_gateway.proxy
import sluice.outbound.upstream
from sluice.ai_gateway.config import GatewaySettings, parse_gateway
from sluice.ai_gateway.proxy import AiGateway
from sluice.ai_gateway.routes import gateway_routes


def _fresh_import(name: str) -> ModuleType:
    # Forget the old package, so that importing it runs (and warns) again.
    for loaded in [
        m for m in sys.modules if m == "sluice.gateway" or m.startswith("sluice.gateway.")
    ]:
        del sys.modules[loaded]
    return importlib.import_module(name)


def test_the_old_package_warns_and_gives_the_public_names() -> None:
    """Importing the old package warns and re-exports the same objects."""
    with pytest.warns(DeprecationWarning, match=r"sluice\.ai_gateway"):
        old = _fresh_import("sluice.gateway")
    assert sorted(old.__all__) == [
        "AiGateway", "GatewaySettings", "gateway_routes", "parse_gateway",
    ]  # fmt: skip
    assert old.AiGateway is AiGateway
    assert old.GatewaySettings is GatewaySettings
    assert old.gateway_routes is gateway_routes
    assert old.parse_gateway is parse_gateway


def test_old_module_paths_name_the_moved_modules() -> None:
    """``from sluice.gateway.proxy import ...`` and friends still resolve."""
    with pytest.warns(DeprecationWarning, match=r"sluice\.ai_gateway"):
        proxy = _fresh_import("sluice.gateway.proxy")
    assert proxy is sluice.ai_gateway.proxy
    assert importlib.import_module("sluice.gateway.upstream") is sluice.outbound.upstream
