"""The audit trail: a hash chain of changes with signed checkpoints.

Each entry records who (``actor``) did what (``action``) to which ``resource``, why, through
which ``source`` (``cli``, ``http``), and the SHA-256 digests of the resource's canonical JSON
before and after (never the state itself: secrets and payloads stay out of the trail). Its
``hash`` is the SHA-256 of the canonical JSON of its sequence number, content and the previous
entry's hash, so editing, deleting, inserting or reordering any entry breaks the chain at that
entry. Cutting entries off the end leaves a valid chain; the signed checkpoints catch that: an
Ed25519 signature (key outside the store, :mod:`sluice.governance.signing`) over the head every
``checkpoint_every`` entries or ``checkpoint_interval_s`` seconds, whichever comes first (checked
when an entry is appended). Whoever rewrites the whole chain from some entry on cannot sign
the new heads, so the first checkpoint after the rewrite names it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sluice.governance.principals import Principal
from sluice.governance.signing import (
    checkpoint_message,
    key_id,
    public_text,
    sign,
    signature_valid,
)
from sluice.store.base import GENESIS_HASH, AuditRecord, CheckpointRecord, GovernanceStore

_PAGE = 1000
#: The longest reason kept with an entry (longer ones are cut: entries stay bounded).
MAX_WHY_CHARS = 500
#: Where a change came from (the ``source`` of an entry).
SOURCES = ("cli", "http", "api")


def canonical_json(value: Any) -> bytes:
    """``value`` as canonical JSON: sorted keys, no spaces, UTF-8 (orjson's rendering)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def digest(value: Any) -> str | None:
    """SHA-256 (hex) of ``value``'s canonical JSON; None for None (no state: created or gone)."""
    if value is None:
        return None
    return hashlib.sha256(canonical_json(value)).hexdigest()


def entry_hash(
    seq: int, ts: float, actor: str, action: str, resource: str, before: str | None,
    after: str | None, why: str, source: str, prev_hash: str,
) -> str:  # fmt: skip
    """The chain hash of an entry: its sequence number, content and predecessor's hash."""
    content = {"seq": seq, "ts": ts, "actor": actor, "action": action, "resource": resource,
               "before": before, "after": after, "why": why, "source": source,
               "prev": prev_hash}  # fmt: skip
    return hashlib.sha256(canonical_json(content)).hexdigest()


def rehash(entry: AuditRecord) -> str:
    """The hash ``entry``'s stored content calls for."""
    return entry_hash(entry.seq, entry.ts, entry.actor, entry.action, entry.resource,
                      entry.before, entry.after, entry.why, entry.source,
                      entry.prev_hash)  # fmt: skip


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :meth:`AuditLog.verify` found: ``ok``, or the first bad entry and why."""

    ok: bool
    entries: int
    checkpoints: int
    signatures_checked: bool
    first_bad: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        return asdict(self)


class AuditLog:
    """Appends to, reads, exports and verifies the audit trail in a store.

    ``signing_key`` signs checkpoints (none: the chain is kept but not checkpointed);
    ``verify_key`` checks them (by default the signing key's public half).
    """

    def __init__(
        self,
        store: GovernanceStore,
        signing_key: Ed25519PrivateKey | None = None,
        verify_key: Ed25519PublicKey | None = None,
        checkpoint_every: int = 100,
        checkpoint_interval_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._signing_key = signing_key
        self.verify_key = verify_key or (None if signing_key is None else signing_key.public_key())
        self.checkpoint_every = max(1, checkpoint_every)
        self.checkpoint_interval_s = checkpoint_interval_s
        self._clock = clock
        self._last_checkpoint = float("-inf")

    async def append(
        self,
        actor: Principal | str,
        action: str,
        resource: str,
        before: Any = None,
        after: Any = None,
        why: str = "",
        source: str = "cli",
    ) -> AuditRecord:
        """Append one entry (``before``/``after`` are stored as digests only); return it.

        Writes a signed checkpoint after it when one is due.
        """
        name = actor.name if isinstance(actor, Principal) else actor
        why = why[:MAX_WHY_CHARS]
        before_digest, after_digest = digest(before), digest(after)
        ts = self._clock()

        def seal(head_seq: int, head_hash: str) -> AuditRecord:
            seq = head_seq + 1
            return AuditRecord(seq, ts, name, action, resource, before_digest, after_digest,
                               why, source, head_hash,
                               entry_hash(seq, ts, name, action, resource, before_digest,
                                          after_digest, why, source, head_hash))  # fmt: skip

        entry = await self.store.append_audit(seal)
        if self._signing_key is not None and (
            entry.seq % self.checkpoint_every == 0
            or self._clock() - self._last_checkpoint >= self.checkpoint_interval_s
        ):
            await self._checkpoint_at(entry.seq, entry.hash)
        return entry

    async def checkpoint(self) -> CheckpointRecord | None:
        """Sign the current head now; None without a signing key or with an empty trail."""
        seq, head_hash = await self.store.audit_head()
        if self._signing_key is None or seq == 0:
            return None
        return await self._checkpoint_at(seq, head_hash)

    async def _checkpoint_at(self, seq: int, head_hash: str) -> CheckpointRecord:
        assert self._signing_key is not None
        ts = self._clock()
        record = CheckpointRecord(
            seq, head_hash, ts, key_id(self._signing_key.public_key()),
            sign(self._signing_key, checkpoint_message(seq, head_hash, ts)),
        )  # fmt: skip
        await self.store.put_checkpoint(record)
        self._last_checkpoint = ts
        return record

    async def list(self, after: int = 0, limit: int = 100) -> list[AuditRecord]:
        """Entries after sequence number ``after``, oldest first, at most ``limit``."""
        return await self.store.audit_entries(after, min(max(limit, 1), _PAGE))

    async def show(self, seq: int) -> AuditRecord:
        """One entry; NotFoundError if there is none."""
        return await self.store.audit_entry(seq)

    async def _all(self) -> AsyncIterator[AuditRecord]:
        after = 0
        while True:
            page = await self.store.audit_entries(after, _PAGE)
            for entry in page:
                yield entry
            if len(page) < _PAGE:
                return
            after = page[-1].seq

    async def export(self) -> AsyncIterator[dict[str, Any]]:
        """Every entry, then every checkpoint, then the public key, as JSON-ready dicts
        (``{"entry": ...}``, ``{"checkpoint": ...}``, ``{"verify_key": ...}``), read in pages:
        what ``sluice audit export`` writes, one per line, for verification elsewhere."""
        async for entry in self._all():
            yield {"entry": asdict(entry)}
        for cp in await self.store.checkpoints():
            yield {"checkpoint": asdict(cp)}
        if self.verify_key is not None:
            yield {"verify_key": public_text(self.verify_key), "key_id": key_id(self.verify_key)}

    async def verify(self) -> VerifyReport:
        """Walk the chain from the first entry; name the first entry that is edited, missing,
        inserted or out of order, a checkpoint that does not match or is not validly signed,
        or the first entry cut off the end (or added past the recorded head).

        After a rewrite that recomputed every hash from some entry on, the chain is whole
        again; the first signed checkpoint after it no longer matches, and the report names
        the entries since the last checkpoint that did as the ones not to trust."""
        cps = {cp.seq: cp for cp in await self.store.checkpoints()}
        checked = self.verify_key is not None
        count = 0
        prev: AuditRecord | None = None

        def bad(seq: int, problem: str) -> VerifyReport:
            return VerifyReport(False, count, len(cps), checked, seq, problem)

        trusted = 0  # the last entry a valid signed checkpoint vouches for
        async for entry in self._all():
            count += 1
            expected = 1 if prev is None else prev.seq + 1
            prev_hash = GENESIS_HASH if prev is None else prev.hash
            if entry.seq != expected:
                return bad(expected, f"entry {expected} is missing (the next one is {entry.seq})")
            if entry.prev_hash != prev_hash:
                return bad(*self._link_problem(prev, entry, trusted))
            if rehash(entry) != entry.hash:
                return bad(entry.seq, f"entry {entry.seq} was edited: its content does not "
                                      "match its hash")  # fmt: skip
            cp = cps.get(entry.seq)
            if cp is not None:
                if checked and not self._signed(cp):
                    return bad(entry.seq, f"checkpoint {cp.seq} is not validly signed")
                if cp.hash != entry.hash:
                    return bad(trusted + 1, f"entries {trusted + 1} to {entry.seq} were "
                               f"rewritten: entry {entry.seq} does not match its signed "
                               "checkpoint")  # fmt: skip
                trusted = entry.seq
            prev = entry
        last = 0 if prev is None else prev.seq
        beyond = [seq for seq in cps if seq > last]
        if beyond:
            cp = cps[min(beyond)]
            if not checked or self._signed(cp):
                return bad(last + 1, f"the trail was cut off after entry {last}: checkpoint "
                                     f"{cp.seq} signs entries up to {cp.seq}")  # fmt: skip
            return bad(cp.seq, f"checkpoint {cp.seq} is not validly signed")
        head_seq, _ = await self.store.audit_head()
        if head_seq > last:
            return bad(last + 1, f"the trail was cut off after entry {last}: the head says "
                                 f"{head_seq} (entries after the last checkpoint)")  # fmt: skip
        if head_seq < last:
            return bad(head_seq + 1, f"entry {head_seq + 1} was added past the head "
                                     f"({head_seq}), not appended through the store")  # fmt: skip
        return VerifyReport(True, count, len(cps), checked)

    @staticmethod
    def _link_problem(
        prev: AuditRecord | None, entry: AuditRecord, trusted: int
    ) -> tuple[int, str]:
        """Which entry a broken link between ``prev`` and ``entry`` names, and why."""
        if prev is None:
            return entry.seq, f"entry {entry.seq} does not start the chain"
        if entry.prev_hash == prev.prev_hash:
            return prev.seq, (f"entry {prev.seq} was inserted: it and entry {entry.seq} both "
                              "follow the same entry")  # fmt: skip
        if prev.seq > trusted and rehash(entry) == entry.hash:
            return prev.seq, (f"entry {prev.seq} was rewritten: entry {entry.seq} chained to "
                              "another hash")  # fmt: skip
        return entry.seq, (f"entry {entry.seq} does not follow entry {prev.seq} (moved, "
                           "inserted or rewritten)")  # fmt: skip

    def _signed(self, cp: CheckpointRecord) -> bool:
        assert self.verify_key is not None
        return cp.key_id == key_id(self.verify_key) and signature_valid(
            self.verify_key, checkpoint_message(cp.seq, cp.hash, cp.ts), cp.signature
        )
