"""Governance: who may do what (principals, roles, permissions), and what was done (the audit
trail). Every state-changing admin command and HTTP admin route goes through one
:class:`Gate`.

The API, for code that adds governed actions::

    from sluice.governance import AuditLog, Change, Gate, Permission, authorize

    gate = gate_for(store)   # Gate(AuditLog(store, signing_key_from_env(), ...)); any Store
    audit = gate.audit
    # A read: raises sluice.errors.Forbidden (HTTP 403 problem+json) unless allowed.
    gate.check(principal, Permission.SECRETS_READ_METADATA)      # or authorize(principal, p)
    # A change: authorize, apply, then one audit entry with digests of before and after.
    async def apply() -> Change[None]:
        before = await load_secret_metadata(name)
        await write_secret(name, value)
        return Change(None, before=before, after={"name": name, "version": version})
    await gate.change(principal, Permission.SECRETS_WRITE, "secret.write", f"secret/{name}",
                      apply, why="rotate", source="cli")
    # The same, checked once at the door of a command or route (what the CLI and HTTP do):
    door = gate.enter(principal, Permission.SECRETS_WRITE, source="http", why="rotate")
    await door.change("secret.write", f"secret/{name}", apply)
    # Or append directly (``before``/``after`` any JSON-able values; only digests are kept):
    await audit.append(actor=principal, action="secret.write", resource=f"secret/{name}",
                       before=old_meta, after=new_meta, why="rotate", source="http")

- :class:`Permission`: ``resource:action`` pairs (prompts, secrets, routing, releases, API
  keys, quarantine, dead letters, fixtures, audit, principals, roles, runs, indexes).
- :data:`ROLES`: the built-in roles ``admin``, ``release_manager``, ``developer``,
  ``operator``, ``viewer`` (and ``runner``, what API keys made to run workflows hold); deny by
  default: a principal holds the union of its roles' permissions and nothing else.
- :class:`Principal`: a user or service account; :func:`create_principal`,
  :func:`issue_token` (``sp_<id>_<secret>``, only a SHA-256 stored), :func:`authenticate_token`,
  :func:`principal_from_api_key` (an API key's ``runner``/``operator`` role as a principal),
  :func:`local_admin` (the command line's identity on a local store, ``--as NAME``).
- :func:`authorize` raises :class:`~sluice.errors.Forbidden`; :func:`allowed` answers.
- :class:`AuditLog`: ``append``, ``list``, ``show``, ``export``, ``verify``, ``checkpoint``; a
  hash chain with Ed25519-signed checkpoints (:mod:`sluice.governance.signing`: keys from
  ``SLUICE_AUDIT_SIGNING_KEY`` / ``SLUICE_AUDIT_SIGNING_KEY_FILE`` / ``SLUICE_AUDIT_VERIFY_KEY``).
- :func:`digest`: SHA-256 of a value's canonical JSON, as the audit trail keeps states.
"""

from sluice.errors import Forbidden
from sluice.governance.audit import AuditLog, VerifyReport, canonical_json, digest
from sluice.governance.gate import Authorized, Change, Gate, gate_for
from sluice.governance.permissions import ROLES, Permission, Role, permissions_of, role_named
from sluice.governance.principals import (
    LOCAL_ADMIN,
    Principal,
    allowed,
    authenticate_token,
    authorize,
    create_principal,
    hash_token,
    issue_token,
    local_admin,
    principal_from_api_key,
)
from sluice.governance.signing import (
    new_signing_key,
    signing_key_from_env,
    verify_key_from_env,
)

__all__ = [
    "LOCAL_ADMIN",
    "ROLES",
    "AuditLog",
    "Authorized",
    "Change",
    "Forbidden",
    "Gate",
    "Permission",
    "Principal",
    "Role",
    "VerifyReport",
    "allowed",
    "authenticate_token",
    "authorize",
    "canonical_json",
    "create_principal",
    "digest",
    "gate_for",
    "hash_token",
    "issue_token",
    "local_admin",
    "new_signing_key",
    "permissions_of",
    "principal_from_api_key",
    "role_named",
    "signing_key_from_env",
    "verify_key_from_env",
]
