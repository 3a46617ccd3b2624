"""Permissions (resource/action pairs) and the built-in roles that bundle them.

Deny by default: a principal may do exactly what the union of its roles' permissions names.
The roles are built in (not stored), so every process of a deployment agrees on them and a
change to a role is a change to the code, reviewed like one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sluice.errors import ConfigError


class Permission(StrEnum):
    """One action on one kind of resource, written ``resource:action``."""

    PROMPTS_READ = "prompts:read"
    PROMPTS_WRITE = "prompts:write"
    SECRETS_READ_METADATA = "secrets:read-metadata"
    SECRETS_WRITE = "secrets:write"
    ROUTING_READ = "routing:read"
    ROUTING_WRITE = "routing:write"
    RELEASES_READ = "releases:read"  # releases and feature flags
    RELEASES_WRITE = "releases:write"
    API_KEYS_READ = "apikeys:read"
    API_KEYS_WRITE = "apikeys:write"
    QUARANTINE_REPLAY = "quarantine:replay"
    QUARANTINE_DROP = "quarantine:drop"
    DEAD_LETTERS_REPLAY = "dead-letters:replay"
    DEAD_LETTERS_DROP = "dead-letters:drop"
    FIXTURES_EXPORT = "fixtures:export"
    AUDIT_READ = "audit:read"
    PRINCIPALS_READ = "principals:read"
    PRINCIPALS_WRITE = "principals:write"
    ROLES_READ = "roles:read"
    ROLES_WRITE = "roles:write"
    RUNS_READ = "runs:read"
    RUNS_REPLAY = "runs:replay"
    RUNS_CANCEL = "runs:cancel"
    INDEXES_WRITE = "indexes:write"


P = Permission


@dataclass(frozen=True, slots=True)
class Role:
    """A named set of permissions."""

    name: str
    description: str
    permissions: frozenset[Permission]


_VIEWER = frozenset({P.PROMPTS_READ, P.SECRETS_READ_METADATA, P.ROUTING_READ, P.RELEASES_READ,
                     P.RUNS_READ})  # fmt: skip
_DEVELOPER = _VIEWER | {P.PROMPTS_WRITE, P.ROUTING_WRITE, P.FIXTURES_EXPORT, P.INDEXES_WRITE}
_RELEASE_MANAGER = _VIEWER | {P.RELEASES_WRITE, P.ROUTING_WRITE, P.PROMPTS_WRITE, P.AUDIT_READ}
_OPERATOR = _VIEWER | {P.QUARANTINE_REPLAY, P.QUARANTINE_DROP, P.DEAD_LETTERS_REPLAY,
                       P.DEAD_LETTERS_DROP, P.RUNS_REPLAY, P.RUNS_CANCEL, P.API_KEYS_READ,
                       P.INDEXES_WRITE, P.AUDIT_READ, P.PRINCIPALS_READ,
                       P.ROLES_READ}  # fmt: skip

_BUILTIN = (
    Role("admin", "everything, including principals, roles and secrets", frozenset(P)),
    Role("release_manager", "releases, flags, routing, prompts; reads the audit", _RELEASE_MANAGER),
    Role("developer", "prompts, routing, fixtures and index items", _DEVELOPER),
    Role("operator", "quarantine, dead letters, runs; reads keys, principals, audit", _OPERATOR),
    Role("viewer", "reads prompts, secret metadata, routing, releases and runs", _VIEWER),
    Role(
        "runner", "runs its tenant's workflows (API keys made for that)", frozenset({P.RUNS_READ})
    ),
)
#: The built-in roles by name. ``runner`` is what an API key made for running workflows
#: holds: it runs its tenant's workflows and reads their runs, nothing of the deployment.
ROLES: dict[str, Role] = {role.name: role for role in _BUILTIN}


def role_named(name: str) -> Role:
    """The built-in role ``name``; a ConfigError listing the known ones otherwise."""
    try:
        return ROLES[name]
    except KeyError:
        raise ConfigError(f"unknown role {name!r} (known: {', '.join(ROLES)})") from None


def permissions_of(roles: tuple[str, ...] | list[str]) -> frozenset[Permission]:
    """The union of the permissions of ``roles``; unknown role names grant nothing."""
    out: frozenset[Permission] = frozenset()
    for name in roles:
        role = ROLES.get(name)
        if role is not None:
            out |= role.permissions
    return out
