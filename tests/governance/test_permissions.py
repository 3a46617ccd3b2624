"""Deny by default: what each kind of principal holds, over every permission."""

from __future__ import annotations

import pytest

from sluice.errors import ConfigError, Forbidden
from sluice.governance import (
    ROLES,
    Permission,
    Principal,
    allowed,
    authorize,
    principal_from_api_key,
    role_named,
)
from sluice.store.base import ApiKeyRecord


@pytest.mark.parametrize("permission", list(Permission))
def test_only_what_a_role_grants(permission: Permission) -> None:
    """No role, an unknown role or a disabled admin: refused, naming who and what; an admin:
    allowed; a viewer never writes."""
    for nobody in (Principal("n", "user", ()), Principal("u", "user", ("root",)),
                   Principal("d", "user", ("admin",), disabled=True)):  # fmt: skip
        with pytest.raises(Forbidden) as refused:
            authorize(nobody, permission)
        assert (refused.value.principal, refused.value.permission) == (nobody.name, permission)
    authorize(Principal("a", "user", ("admin",)), permission)
    viewer = Principal("v", "user", ("viewer",))
    reads = permission.value.endswith((":read", ":read-metadata"))
    assert allowed(viewer, permission) == (reads and permission in ROLES["viewer"].permissions)
    if not reads:
        assert not allowed(viewer, permission)


def test_api_keys_keep_their_roles() -> None:
    """A runner key reads runs and nothing of the deployment; an operator key may replay."""
    runner = principal_from_api_key(ApiKeyRecord("k1", "acme", ("runner",), "h", 0.0))
    operator = principal_from_api_key(ApiKeyRecord("k2", "acme", ("runner", "operator"), "h", 0.0))
    assert runner.name == "apikey:k1"
    assert runner.permissions == {Permission.RUNS_READ}
    assert allowed(operator, Permission.QUARANTINE_REPLAY)
    assert not allowed(operator, Permission.PRINCIPALS_WRITE)


def test_every_role_is_a_subset_of_admin_and_unknown_roles_are_named() -> None:
    """Admin holds every permission; asking for an unknown role lists the known ones."""
    assert all(role.permissions <= ROLES["admin"].permissions for role in ROLES.values())
    assert ROLES["admin"].permissions == set(Permission)
    with pytest.raises(ConfigError, match="unknown role 'root' \\(known: admin, release_manager"):
        role_named("root")
