"""Every identity x every governed command, generated from the command table and the role
table: allowed commands succeed and their changes are audited with the actor; all others exit
with code 3, one line on stderr, and change nothing in the store (every table compared)."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from sluice.cli.governed import COMMANDS, FORBIDDEN_EXIT
from sluice.cli.main import build_app
from sluice.governance import LOCAL_ADMIN, create_principal, new_signing_key
from sluice.governance.signing import SIGNING_KEY_ENV
from sluice.store.base import AuditRecord
from sluice.store.sqlite import SqliteStore
from tests.conftest import MakeApp
from tests.governance.matrix import (
    CONFIG,
    WORKFLOW,
    Targets,
    dump,
    empty_index,
    may,
    roles_of,
    targets,
)

#: The identities of the command line: each built-in role and none (``--as``), and the
#: default local admin (no ``--as``).
CLI_IDENTITIES = [*(i for i in ("admin", "release_manager", "developer", "operator", "viewer",
                                "runner", "none")), LOCAL_ADMIN]  # fmt: skip
#: The commands that only read (no audit entry expected).
READS = {c for c in COMMANDS if c.split()[1] in ("list", "show", "export", "verify", "checkpoint")}


def _argv(command: str, t: Targets) -> list[str]:
    """The arguments of a run of ``command`` that succeeds when allowed."""
    args = {
        "apikey create": ["--tenant", "acme"], "apikey list": ["--json"],
        "apikey revoke": [t.key_id], "quarantine replay": [t.item_id],
        "quarantine drop": [t.item_id], "runs replay": [t.event_id],
        "principal create": [t.new_name, "--role", "viewer"], "principal list": ["--json"],
        "principal show": [t.principal], "principal disable": [t.principal],
        "principal token": [t.principal],
        "principal revoke-token": [t.principal, t.token_id], "role list": ["--json"],
        "role show": ["viewer"],
        "role grant": [t.principal, "viewer"], "role revoke": [t.holder, "viewer"],
        "audit list": ["--json"], "audit show": [str(t.seq)], "audit export": [],
        "audit verify": ["--json"], "audit checkpoint": [],
    }[command]  # fmt: skip
    return [*command.split(), *args]


@pytest.mark.parametrize("identity", CLI_IDENTITIES)
def test_every_command_for_every_identity(
    make_app: MakeApp, identity: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command table's permission, held or not, decides every outcome."""
    monkeypatch.setenv(SIGNING_KEY_ENV, new_signing_key())
    app_dir = make_app(CONFIG, {"tickets.yaml": WORKFLOW})
    empty_index(app_dir)
    db = app_dir / ".sluice" / "governance.db"
    role = "admin" if identity == LOCAL_ADMIN else identity

    async def setup(make_principal: bool) -> tuple[Targets, int]:
        async with SqliteStore(db) as store:
            if make_principal:
                await create_principal(store, f"as-{identity}", "user", roles_of(identity))
            found = await targets(store)
            head, _ = await store.audit_head()
            return found, head

    async def entries_after(head: int) -> list[AuditRecord]:
        async with SqliteStore(db) as store:
            return await store.audit_entries(after=head)

    asyncio.run(setup(identity != LOCAL_ADMIN))
    who = [] if identity == LOCAL_ADMIN else ["--as", f"as-{identity}"]
    actor = LOCAL_ADMIN if identity == LOCAL_ADMIN else f"as-{identity}"
    cli = build_app()
    wrong: list[str] = []
    for command, permission in COMMANDS.items():
        t, head = asyncio.run(setup(False))
        before = dump(db)
        argv = [*_argv(command, t), "--app", str(app_dir), *who, *(
            [] if command in READS else ["--why", "matrix"])]  # fmt: skip
        result = CliRunner().invoke(cli, argv)
        case = f"{identity}: sluice {' '.join(argv[:4])} -> {result.exit_code} {result.stderr!r}"
        if may(role, permission):
            if result.exit_code != 0:
                wrong.append(f"allowed but failed: {case}")
            entries = asyncio.run(entries_after(head))
            if command not in READS and [(e.actor, e.why) for e in entries] != [(actor, "matrix")]:
                wrong.append(f"change not audited once: {case} {entries}")
            continue
        lines = result.stderr.strip().splitlines()
        if result.exit_code != FORBIDDEN_EXIT or len(lines) != 1 or "lacks" not in lines[0]:
            wrong.append(f"not refused in one line with code 3: {case}")
        if dump(db) != before:
            wrong.append(f"refused but changed the store: {case}")
    assert wrong == []


def test_as_names_the_local_admin_unless_a_principal_has_that_name(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--as names the local admin in the audit trail; a stored principal's name brings its
    roles instead, and a disabled principal may do nothing."""
    app_dir = make_app(CONFIG, {"tickets.yaml": WORKFLOW})
    cli, at = build_app(), ["--app", str(app_dir)]

    def run(*argv: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, [*argv, *at])
        return result.exit_code, result.stderr.strip()

    assert run("principal", "create", "vic", "--role", "viewer", "--as", "grace") == (0, "")
    assert run("apikey", "create", "--tenant", "acme", "--as", "vic") == (
        3, "error: 'vic' lacks the permission 'apikeys:write'"
    )  # fmt: skip
    assert run("principal", "disable", "vic")[0] == 0
    assert run("role", "list", "--as", "vic") == (
        3, "error: 'vic' lacks the permission 'roles:read'"
    )  # fmt: skip
    assert run("role", "list", "--as", " ") == (
        2, "error: --as: ' ' is not a name a person or service can have"
    )  # fmt: skip

    async def actors() -> list[str]:
        async with SqliteStore(app_dir / ".sluice" / "governance.db") as store:
            return [e.actor for e in await store.audit_entries()]

    assert asyncio.run(actors()) == ["grace", LOCAL_ADMIN]
