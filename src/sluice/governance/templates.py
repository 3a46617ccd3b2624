"""Managed prompt templates: the versions of an app's templates kept in the store.

Templates are authored as files (``APP_DIR/prompts/*.yaml``, :mod:`sluice.prompts`) and
addressed by content (``name@version``). :meth:`ManagedTemplates.push` uploads the versions
the store does not hold yet (pushing the same files again adds nothing); the runtime resolves
a ``name@version`` the app's files no longer hold from the store
(:meth:`ManagedTemplates.get`), so an event, a fixture or a release pinned to an older version
still renders it. A stored version is parsed and checked again when read: its content must
hash to the version that names it, so an edited row is refused instead of rendered.
"""

from __future__ import annotations

import difflib
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sluice.errors import ConfigError, NotFoundError
from sluice.guard.crypto import TamperedDataError
from sluice.prompts import PROMPTS_DIR, PromptTemplate, load_prompts
from sluice.prompts.template import parse_template
from sluice.store.managed import ManagedStore, TemplateRecord

#: Parsed stored templates kept in a process (they never change: content-addressed).
CACHE_ENTRIES = 512


@dataclass(frozen=True, slots=True)
class Pushed:
    """One template of a push: its id, its file, and whether this push added it."""

    id: str
    file: str
    added: bool

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"id": self.id, "file": self.file, "added": self.added}


def split_ref(ref: str) -> tuple[str, str]:
    """``(name, version)`` of ``name@version``; a ConfigError for anything else."""
    name, sep, version = ref.partition("@")
    if not sep or not name or not version:
        raise ConfigError(f"template reference {ref!r}: expected NAME@VERSION")
    return name, version


def record_dict(record: TemplateRecord, with_source: bool = False) -> dict[str, Any]:
    """A stored version as JSON: id, name, version, who pushed it and when (and its YAML)."""
    out: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "version": record.version,
        "created_at": record.created_at,
        "created_by": record.created_by,
    }
    if with_source:
        out["source"] = record.source
    return out


def parse_stored(record: TemplateRecord) -> PromptTemplate:
    """The template a stored version holds, checked against its content address."""
    where = f"store:{record.id}"
    try:
        raw = yaml.safe_load(record.source)
    except yaml.YAMLError:
        raise TamperedDataError(f"stored template {record.id} is not valid YAML") from None
    template, problems = parse_template(raw, record.name, source=where)
    if template is None:
        raise TamperedDataError(
            f"stored template {record.id} does not parse: {'; '.join(problems)}"
        )
    if template.version != record.version or template.name != record.name:
        raise TamperedDataError(
            f"stored template {record.id} holds {template.id}: the row was altered"
        )
    return template


class ManagedTemplates:
    """The ``templates`` service: push an app's templates, list, show, diff and resolve them."""

    def __init__(self, store: ManagedStore, cache_entries: int = CACHE_ENTRIES) -> None:
        self._store = store
        self._max = cache_entries
        self._parsed: OrderedDict[str, PromptTemplate] = OrderedDict()

    async def push(self, app_dir: Path, actor: str) -> list[Pushed]:
        """Upload every template of ``app_dir/prompts`` whose version the store lacks.

        The files are checked first (:func:`~sluice.prompts.load_prompts`: every problem of
        every file in one ConfigError), so a push is all of them or nothing invalid.
        """
        folder = app_dir / PROMPTS_DIR
        if not folder.is_dir():
            raise ConfigError(f"{folder}: no prompts/ folder to push")
        prompts = load_prompts(app_dir)
        out: list[Pushed] = []
        now = time.time()
        for name in sorted(prompts):
            template = prompts[name]
            source = (app_dir / template.source).read_text(encoding="utf-8")
            added = await self._store.put_template(
                TemplateRecord(template.name, template.version, source, now, actor)
            )
            out.append(Pushed(template.id, template.source, added))
        return out

    async def push_source(self, name: str, source: str, actor: str) -> Pushed:
        """Upload one template given as its YAML text (``name`` unless the text names
        itself); a ConfigError lists every problem of the text."""
        try:
            raw = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            reason = " ".join(str(exc).split())
            raise ConfigError(f"template {name!r}: not valid YAML: {reason}") from None
        template, problems = parse_template(raw, name, source=f"(pushed) {name}")
        if template is None:
            raise ConfigError(f"template {name!r}: invalid", problems)
        added = await self._store.put_template(
            TemplateRecord(template.name, template.version, source, time.time(), actor)
        )
        return Pushed(template.id, template.source, added)

    async def record(self, ref: str) -> TemplateRecord:
        """The stored version ``ref`` names (NotFoundError naming it when absent)."""
        name, version = split_ref(ref)
        return await self._store.get_template(name, version)

    async def get(self, ref: str) -> PromptTemplate:
        """The template ``name@version`` from the store, parsed and checked."""
        found = self._parsed.get(ref)
        if found is not None:
            self._parsed.move_to_end(ref)
            return found
        template = parse_stored(await self.record(ref))
        self._parsed[ref] = template
        while len(self._parsed) > self._max:
            self._parsed.popitem(last=False)
        return template

    async def list(self, name: str | None = None) -> list[TemplateRecord]:
        """Every stored version (of ``name``), by name then push time."""
        return await self._store.list_templates(name)

    async def diff(self, a: str, b: str) -> str:
        """A unified diff of two stored versions' YAML (empty when they are the same text)."""
        first, second = await self.record(a), await self.record(b)
        lines = difflib.unified_diff(
            first.source.splitlines(keepends=True),
            second.source.splitlines(keepends=True),
            fromfile=first.id,
            tofile=second.id,
        )
        return "".join(lines)


async def resolve_template(
    files: Any, managed: ManagedTemplates | None, ref: str
) -> PromptTemplate | None:
    """The template ``ref`` names: from the app's files (``files.get``), else, for a
    ``name@version`` they do not hold, from the store; None when neither has it."""
    found: PromptTemplate | None = None if files is None else files.get(ref)
    if found is not None or managed is None or "@" not in ref:
        return found
    try:
        return await managed.get(ref)
    except NotFoundError:
        return None
