"""Governed changes to managed configuration: secrets, prompt templates, routing rules.

The command line (``sluice secret|template|routing``) and the HTTP admin routes
(``/v1/admin/secrets``, ``/templates``, ``/routing``) both call :class:`ManagedConfig`, which
passes every action through the :class:`~sluice.governance.gate.Gate`: the permission is
checked first (``Forbidden``: nothing read, nothing changed), then the change is applied, then
one audit entry records who did what to which resource, with digests of the metadata before
and after. A secret's value is never part of an audit entry, nor of anything returned.

======================  ==========================  ==================================
action                  permission                  audit action / resource
======================  ==========================  ==================================
secret set              ``secrets:write``           ``secret.set`` / ``secret/NAME``
secret delete           ``secrets:write``           ``secret.delete`` / ``secret/NAME``
secret rotate           ``secrets:write``           ``secret.rotate`` / ``secret/*``
secret list / show      ``secrets:read-metadata``   (reads are not audited)
template push           ``prompts:write``           ``template.push`` / ``template/ID``
template list/show/diff ``prompts:read``
routing set             ``routing:write``           ``routing.set`` / ``routing``
routing show            ``routing:read``
======================  ==========================  ==================================
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sluice.governance.audit import AuditLog
from sluice.governance.gate import Change, Gate
from sluice.governance.permissions import Permission
from sluice.governance.principals import Principal
from sluice.governance.routing import Routing, document_of
from sluice.governance.secrets import SecretInfo, Secrets
from sluice.governance.templates import ManagedTemplates, Pushed, record_dict
from sluice.store.managed import RoutingRecord, TemplateRecord


def routing_dict(record: RoutingRecord | None) -> dict[str, Any]:
    """The routing rules in force as JSON: version, who set them and when, the document."""
    if record is None:
        return {"version": 0, "created_at": None, "created_by": None, "rules": {}}
    return {"version": record.version, "created_at": record.created_at,
            "created_by": record.created_by, "rules": document_of(record)}  # fmt: skip


class ManagedConfig:
    """Authorized, audited access to the managed configuration of one store."""

    def __init__(
        self, gate: Gate, secrets: Secrets, templates: ManagedTemplates, routing: Routing
    ) -> None:
        self.gate = gate
        self.secrets = secrets
        self.templates = templates
        self.routing = routing

    @classmethod
    def of(cls, services: Mapping[str, Any], audit: AuditLog) -> ManagedConfig:
        """The managed configuration of an app's services (its ``governance`` group)."""
        return cls(Gate(audit), services["secrets"], services["templates"], services["routing"])

    # secrets -------------------------------------------------------------------------------
    async def set_secret(
        self, who: Principal, name: str, value: str, why: str = "", source: str = "cli"
    ) -> SecretInfo:
        """Store a new version of ``name``; its metadata after the change."""

        async def apply() -> Change[SecretInfo]:
            before = await self.secrets.find(name)
            await self.secrets.set(name, value, who.name)
            after = await self.secrets.show(name)
            return Change(after, _meta(before), after.as_dict())

        return await self.gate.change(who, Permission.SECRETS_WRITE, "secret.set",
                                      f"secret/{name}", apply, why, source)  # fmt: skip

    async def delete_secret(
        self, who: Principal, name: str, why: str = "", source: str = "cli"
    ) -> int:
        """Remove every version of ``name``; how many."""

        async def apply() -> Change[int]:
            before = await self.secrets.show(name)
            removed = await self.secrets.delete(name)
            return Change(removed, before.as_dict(), None)

        return await self.gate.change(who, Permission.SECRETS_WRITE, "secret.delete",
                                      f"secret/{name}", apply, why, source)  # fmt: skip

    async def rotate_secrets(self, who: Principal, why: str = "", source: str = "cli") -> int:
        """Re-wrap every data key with the keyring's active key; how many were re-wrapped."""

        async def apply() -> Change[int]:
            before = [info.as_dict() for info in await self.secrets.list()]
            changed = await self.secrets.rotate()
            after = [info.as_dict() for info in await self.secrets.list()]
            # Audited even when nothing needed re-wrapping: that a rotation ran is a fact too.
            return Change(changed, before, after)

        return await self.gate.change(who, Permission.SECRETS_WRITE, "secret.rotate",
                                      "secret/*", apply, why, source)  # fmt: skip

    async def list_secrets(self, who: Principal) -> list[SecretInfo]:
        """Every secret's metadata."""
        self.gate.check(who, Permission.SECRETS_READ_METADATA)
        return await self.secrets.list()

    async def show_secret(self, who: Principal, name: str) -> SecretInfo:
        """One secret's metadata."""
        self.gate.check(who, Permission.SECRETS_READ_METADATA)
        return await self.secrets.show(name)

    # templates -----------------------------------------------------------------------------
    async def push_templates(
        self, who: Principal, app_dir: Path, why: str = "", source: str = "cli"
    ) -> list[Pushed]:
        """Upload the app's template versions the store lacks; one audit entry per version
        added (pushing again adds none)."""
        self.gate.check(who, Permission.PROMPTS_WRITE)
        pushed = await self.templates.push(app_dir, who.name)
        for item in pushed:
            if item.added:
                record = await self.templates.record(item.id)
                await self.gate.audit.append(who, "template.push", f"template/{item.id}", None,
                                             record_dict(record, with_source=True), why,
                                             source)  # fmt: skip
        return pushed

    async def push_template_source(
        self, who: Principal, name: str, source: str, why: str = "", origin: str = "http"
    ) -> Pushed:
        """Upload one template as YAML text; audited when it is a new version."""
        self.gate.check(who, Permission.PROMPTS_WRITE)
        pushed = await self.templates.push_source(name, source, who.name)
        if pushed.added:
            record = await self.templates.record(pushed.id)
            await self.gate.audit.append(who, "template.push", f"template/{pushed.id}", None,
                                         record_dict(record, with_source=True), why,
                                         origin)  # fmt: skip
        return pushed

    async def list_templates(self, who: Principal, name: str | None = None) -> list[TemplateRecord]:
        """Every stored template version (of ``name``)."""
        self.gate.check(who, Permission.PROMPTS_READ)
        return await self.templates.list(name)

    async def show_template(self, who: Principal, ref: str) -> TemplateRecord:
        """One stored version, ``name@version``."""
        self.gate.check(who, Permission.PROMPTS_READ)
        return await self.templates.record(ref)

    async def diff_templates(self, who: Principal, a: str, b: str) -> str:
        """A unified diff of two stored versions."""
        self.gate.check(who, Permission.PROMPTS_READ)
        return await self.templates.diff(a, b)

    # routing -------------------------------------------------------------------------------
    async def set_routing(
        self, who: Principal, rules: Mapping[str, Any], why: str = "", source: str = "cli"
    ) -> dict[str, Any]:
        """Store ``rules`` as the next version of the routing rules; the rules in force."""

        async def apply() -> Change[dict[str, Any]]:
            before = routing_dict(await self.routing.current())
            await self.routing.set(rules, who.name)
            after = routing_dict(await self.routing.current())
            return Change(after, before, after)

        return await self.gate.change(who, Permission.ROUTING_WRITE, "routing.set", "routing",
                                      apply, why, source)  # fmt: skip

    async def show_routing(self, who: Principal) -> dict[str, Any]:
        """The routing rules in force."""
        self.gate.check(who, Permission.ROUTING_READ)
        return routing_dict(await self.routing.current())


def _meta(info: SecretInfo | None) -> dict[str, Any] | None:
    return None if info is None else info.as_dict()
