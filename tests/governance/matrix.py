"""What the role x route and role x command tests share: an app, targets for every action,
and a dump of the store to prove a refusal changed nothing."""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.governance import ROLES, AuditLog, Permission, create_principal, issue_token
from sluice.governance.secrets import Secrets
from sluice.governance.templates import ManagedTemplates
from sluice.guard.crypto import AesGcmCodec
from sluice.ingress.apikeys import create_api_key
from sluice.retrieval.embedder import embedder_for
from sluice.retrieval.index import VectorIndex
from sluice.retrieval.persist import save_index
from sluice.store.base import NewEvent, QuarantineItem, Store

CONFIG = """
store: sqlite:///.sluice/governance.db
pools:
  cpu: {concurrency: 2, queue_limit: 50}
runtime: {poll_ms: 20}
indexes:
  faq: {embedder: wordllama, max_items: 1000}
"""
#: An at-rest keyring for the apps that test secrets (payloads are then encrypted too, so the
#: targets must be written through that app's store).
KEYRING = {"SLUICE_ENCRYPTION_KEYS": "k1=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
           "SLUICE_ENCRYPTION_ACTIVE": "k1"}  # fmt: skip
WORKFLOW = """
name: tickets
input_schema:
  type: object
  required: [text]
  properties:
    text: {type: string, minLength: 1}
steps:
  - {name: keep, pool: cpu, uses: noop}
"""
#: Tables that record observations of requests, not state: spans and the cost ledger (a
#: request's own trace), and worker heartbeats.
OBSERVATIONS = {"spans", "costs", "owners"}
#: Every identity the matrix acts as: each built-in role, no role at all, and the two kinds
#: of API key (their ``runner``/``operator`` roles mapped onto the built-in ones).
IDENTITIES = [*ROLES, "none", "key:runner", "key:operator"]


def empty_index(app_dir: Path) -> None:
    """Save the empty ``faq`` index the config names (index items then add to it)."""
    index = VectorIndex(embedder_for("wordllama"), name="faq", max_items=1000)
    save_index(index, app_dir / ".sluice" / "indexes" / "faq")


def roles_of(identity: str) -> tuple[str, ...]:
    """The built-in roles an identity of the matrix holds."""
    if identity == "none":
        return ()
    if identity.startswith("key:"):
        return ("runner",) if identity == "key:runner" else ("runner", "operator")
    return (identity,)


def may(identity: str, permission: Permission) -> bool:
    """What the role table says (the expectation the tests hold the code to)."""
    return any(permission in ROLES[r].permissions for r in roles_of(identity))


async def credential(store: Store, identity: str) -> str:
    """A bearer credential for ``identity``: a principal's token, or an API key."""
    if identity.startswith("key:"):
        _, key = await create_api_key(store, "acme", roles_of(identity))
        return key
    principal = await create_principal(store, f"as-{identity}", "user", roles_of(identity))
    _, token = await issue_token(store, principal)
    return token


@dataclass
class Targets:
    """Fresh things one action may act on (made before the store is dumped)."""

    key_id: str
    item_id: str
    event_id: str
    principal: str
    holder: str  # a principal holding the viewer role
    new_name: str
    seq: int
    token_id: str  # a token of ``principal``
    secret: str  # a secret with one version ("" when the store has no keyring)
    template: str  # a stored template version, NAME@VERSION


async def targets(store: Store) -> Targets:
    """Make a key, a quarantined entry, a dead run, two principals and an audit entry."""
    record, _ = await create_api_key(store, "acme")
    item_id = "q" + secrets.token_hex(6)
    await store.quarantine(QuarantineItem(item_id, "api", "tickets", "acme", "bad", ("x",),
                                          b'{"text": "now fine"}', time.time()))  # fmt: skip
    event_id = "e" + secrets.token_hex(6)
    now = time.time()
    await store.insert_event(NewEvent(event_id, "tickets", "1", "acme", b'{"text": "x"}',
                                      "cpu", now, now + 60))  # fmt: skip
    for job in await store.claim("cpu", 100, "matrix", 30):
        await store.bury(job, "failed for the test")
    name = "t" + secrets.token_hex(4)
    token, _ = await issue_token(store, await create_principal(store, name, "user", ()))
    await create_principal(store, name + "-v", "user", ("viewer",))
    seq, _ = await store.audit_head()
    if seq == 0:  # an entry to show
        seq = (await AuditLog(store).append("matrix", "setup", "test")).seq
    secret = "s" + secrets.token_hex(4)
    if isinstance(store.codec, AesGcmCodec):
        await Secrets(store, store.codec).set(secret, "value-" + secret, "matrix")
    else:
        secret = ""
    pushed = await ManagedTemplates(store).push_source("greet", template_source(name), "matrix")
    return Targets(record.id, item_id, event_id, name, name + "-v", "n" + secrets.token_hex(4),
                   seq, token.id, secret, pushed.id)  # fmt: skip


def template_source(word: str) -> str:
    """A valid template whose version is new for each ``word``."""
    return f"system: 'You greet people ({word}).'\nuser: 'Say hello.'\n"


def dump(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every state table of the SQLite file, sorted."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)  # names from above
            for t in tables
            if t not in OBSERVATIONS
        }
