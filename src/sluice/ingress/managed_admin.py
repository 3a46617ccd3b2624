"""The handlers of the managed-configuration admin routes: secrets, prompt templates, routing.

The routes themselves, with the permission each needs, are rows of the one table of governed
routes (:data:`sluice.ingress.admin.ADMIN_ROUTES`), whose door authenticates, authorizes and
hands each handler the admitted call; the handlers go through
:class:`~sluice.governance.managed.ManagedConfig`, which applies and audits each change. No
answer ever holds a secret's value: ``PUT /v1/admin/secrets/{name}`` takes one
(``{"value": "..."}``) and answers with the secret's metadata.
"""

from __future__ import annotations

from typing import Any, Protocol

from sluice.errors import ConfigError
from sluice.governance.managed import ManagedConfig
from sluice.governance.templates import record_dict

_NAME_PARAM = "name"


class AdmittedCall(Protocol):
    """What a governed route's handler is handed (:class:`sluice.ingress.admin.Call`)."""

    @property
    def app(self) -> Any:
        """The app."""

    @property
    def door(self) -> Any:
        """The principal's pass (``principal``, ``gate``, ``why``, ``source``)."""

    @property
    def body(self) -> Any:
        """The JSON body, or None."""

    @property
    def params(self) -> dict[str, Any]:
        """The path parameters."""

    @property
    def query(self) -> dict[str, str]:
        """The query parameters."""


def _managed(call: AdmittedCall) -> ManagedConfig:
    services = call.app.services
    return ManagedConfig(call.door.gate, services["secrets"], services["templates"],
                         services["routing"])  # fmt: skip


def _string(body: Any, name: str) -> str:
    if not isinstance(body, dict) or not isinstance(body.get(name), str):
        raise ConfigError(f"{name}: required, a string")
    value: str = body[name]
    return value


async def list_secrets(call: AdmittedCall) -> tuple[int, Any]:
    """Every secret's metadata (never a value)."""
    found = await _managed(call).list_secrets(call.door.principal)
    return 200, [info.as_dict() for info in found]


async def show_secret(call: AdmittedCall) -> tuple[int, Any]:
    """One secret's versions (never a value)."""
    info = await _managed(call).show_secret(call.door.principal, call.params[_NAME_PARAM])
    return 200, info.as_dict()


async def set_secret(call: AdmittedCall) -> tuple[int, Any]:
    """A new version of a secret: ``{"value": "..."}``; answers with its metadata."""
    value = _string(call.body, "value")
    door = call.door
    info = await _managed(call).set_secret(door.principal, call.params[_NAME_PARAM], value,
                                           door.why, door.source)  # fmt: skip
    return 200, info.as_dict()


async def delete_secret(call: AdmittedCall) -> tuple[int, Any]:
    """Delete every version of a secret (404 when there is none)."""
    door, name = call.door, call.params[_NAME_PARAM]
    removed = await _managed(call).delete_secret(door.principal, name, door.why, door.source)
    return 200, {"name": name, "deleted_versions": removed}


async def rotate_secrets(call: AdmittedCall) -> tuple[int, Any]:
    """Re-wrap every data key with the keyring's active key."""
    door = call.door
    changed = await _managed(call).rotate_secrets(door.principal, door.why, door.source)
    return 200, {"rewrapped": changed}


async def list_templates(call: AdmittedCall) -> tuple[int, Any]:
    """Stored template versions (``?name=`` for one template's)."""
    records = await _managed(call).list_templates(call.door.principal, call.query.get("name"))
    return 200, [record_dict(r) for r in records]


async def show_template(call: AdmittedCall) -> tuple[int, Any]:
    """One stored version with its YAML: ``/v1/admin/templates/NAME@VERSION``."""
    record = await _managed(call).show_template(call.door.principal, call.params["ref"])
    return 200, record_dict(record, with_source=True)


async def diff_templates(call: AdmittedCall) -> tuple[int, Any]:
    """A unified diff of two stored versions: ``?a=NAME@V1&b=NAME@V2``."""
    a, b = call.query.get("a"), call.query.get("b")
    if not a or not b:
        raise ConfigError("a and b: required, two NAME@VERSION ids")
    text = await _managed(call).diff_templates(call.door.principal, a, b)
    return 200, {"a": a, "b": b, "same": not text, "diff": text}


async def push_template(call: AdmittedCall) -> tuple[int, Any]:
    """Upload one template: ``{"name": "...", "source": "YAML"}``; 201 when it is a new
    version, 200 when the store had it."""
    door = call.door
    pushed = await _managed(call).push_template_source(
        door.principal, _string(call.body, "name"), _string(call.body, "source"), door.why,
        door.source,
    )  # fmt: skip
    return (201 if pushed.added else 200), {"id": pushed.id, "added": pushed.added}


async def show_routing(call: AdmittedCall) -> tuple[int, Any]:
    """The routing rules in force."""
    return 200, await _managed(call).show_routing(call.door.principal)


async def set_routing(call: AdmittedCall) -> tuple[int, Any]:
    """Replace the routing rules with the body's (a new version)."""
    if not isinstance(call.body, dict):
        raise ConfigError("the body must be the rules: a JSON object (tenants, workflows, keys)")
    door = call.door
    return 200, await _managed(call).set_routing(door.principal, call.body, door.why,
                                                 door.source)  # fmt: skip
