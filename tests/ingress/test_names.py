"""The ingress's public name, and the deprecated one it replaced."""

from __future__ import annotations

import pytest

from sluice.ingress.intake import Ingress


def test_ingress_is_exported_by_the_package() -> None:
    """``sluice.ingress.Ingress`` is the ingress class."""
    import sluice.ingress

    assert sluice.ingress.Ingress is Ingress


def test_gateway_still_names_the_ingress_with_a_warning() -> None:
    """The old name ``Gateway`` (package and module path) works and warns of its removal."""
    with pytest.warns(DeprecationWarning, match="sluice.ingress.Ingress"):
        from sluice.ingress import Gateway
    assert Gateway is Ingress
    with pytest.warns(DeprecationWarning, match="sluice.ingress.Ingress"):
        from sluice.ingress.gateway import Gateway as OldGateway
    assert OldGateway is Ingress
