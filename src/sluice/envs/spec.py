"""Environments as code: ``APP_DIR/environments.yaml`` declares what each environment is made of.

::

    environments:
      ci:
        store: ${SLUICE_TEST_POSTGRES}       # a PostgreSQL server: the environment gets a
                                             # schema of its own on it (isolate: database
                                             # for a database of its own)
        kv: redis://127.0.0.1:6379/0         # a Redis server: a key prefix of its own
        release: r42                         # recorded; releases land later
        fixtures: [fixtures/tickets.jsonl]   # what `sluice env seed` loads by default
        mocks: {payments: {status: 200}}     # recorded for the suites that use them
      local:
        store: sqlite                        # a SQLite file of its own under .sluice/envs/
        kv: memory

``store`` is ``sqlite`` or a ``postgresql://`` URL (or ``{url: ..., isolate: schema|database}``);
``kv`` is ``memory`` or a ``redis://`` URL (or ``{url: ..., database: N}`` for a Redis database
number; the keys still carry the environment's own prefix, so several environments can share
it). ``${NAME}`` in a URL is read from the environment, and an unset name is an error. Every
problem is reported with the file and the field's path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sluice.config import unknown_problems
from sluice.envs.errors import EnvironmentSpecError

ENV_FILE = "environments.yaml"
#: Environment names: short lower-case SQL-safe words, as they become schema names and prefixes.
NAME = re.compile(r"^[a-z][a-z0-9_]{0,23}$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KEYS = ("store", "kv", "release", "fixtures", "mocks", "description")


@dataclass(frozen=True, slots=True)
class EnvironmentSpec:
    """One declared environment."""

    name: str
    #: ``sqlite`` or the URL of a PostgreSQL server (its database, or a schema in it).
    store: str
    #: ``schema`` or ``database`` (PostgreSQL only).
    isolate: str
    #: ``memory`` or the URL of a Redis server.
    kv: str
    #: The Redis database number to use, or None for the URL's own.
    kv_database: int | None = None
    release: str | None = None
    fixtures: tuple[Path, ...] = ()
    mocks: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def store_kind(self) -> str:
        """``sqlite`` or ``postgres``."""
        return "sqlite" if self.store == "sqlite" else "postgres"


def _expand(text: str, where: str, env: Mapping[str, str], problems: list[str]) -> str:
    def sub(match: re.Match[str]) -> str:
        value = env.get(match.group(1))
        if value is None:
            problems.append(f"{where}: ${{{match.group(1)}}} is not set")
            return ""
        return value

    return _VAR.sub(sub, text)


def _store(raw: Any, where: str, env: Mapping[str, str], problems: list[str]) -> tuple[str, str]:
    isolate = "schema"
    if isinstance(raw, Mapping):
        problems += unknown_problems(raw, ("url", "isolate"), f"{where}.", "setting")
        isolate = raw.get("isolate", "schema")
        if isolate not in ("schema", "database"):
            problems.append(f"{where}.isolate: must be 'schema' or 'database', got {isolate!r}")
        raw = raw.get("url")
        where += ".url"
    if not isinstance(raw, str) or not raw:
        problems.append(f"{where}: must be 'sqlite' or a postgresql:// URL")
        return "sqlite", isolate
    url = _expand(raw, where, env, problems)
    if url == "sqlite":
        if isolate != "schema":
            problems.append(f"{where}: isolate applies to PostgreSQL only")
        return url, "file"
    if not url.startswith(("postgresql://", "postgres://")) and url:
        problems.append(f"{where}: must be 'sqlite' or a postgresql:// URL, got {raw!r}")
    elif "schema=" in url:
        problems.append(f"{where}: name the server only: the environment picks its own schema")
    return url, isolate


def _kv(
    raw: Any, where: str, env: Mapping[str, str], problems: list[str]
) -> tuple[str, int | None]:
    database: int | None = None
    if isinstance(raw, Mapping):
        problems += unknown_problems(raw, ("url", "database"), f"{where}.", "setting")
        value = raw.get("database")
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 15:
                problems.append(f"{where}.database: must be a Redis database number 0-15")
            else:
                database = value
        raw = raw.get("url")
        where += ".url"
    if raw is None:
        return "memory", database
    if not isinstance(raw, str) or not raw:
        problems.append(f"{where}: must be 'memory' or a redis:// URL")
        return "memory", database
    url = _expand(raw, where, env, problems)
    if url in ("memory", "memory://"):
        if database is not None:
            problems.append(f"{where}: database applies to Redis only")
        return "memory", None
    if not url.startswith(("redis://", "rediss://")) and url:
        problems.append(f"{where}: must be 'memory' or a redis:// URL, got {raw!r}")
    elif "prefix=" in url:
        problems.append(f"{where}: name the server only: the environment picks its own prefix")
    return url, database


def parse_environments(
    raw: Any, app_dir: Path, path: Path, env: Mapping[str, str] | None = None
) -> dict[str, EnvironmentSpec]:
    """Validate the parsed file; every problem is collected before raising."""
    environ = os.environ if env is None else env
    problems: list[str] = []
    if not isinstance(raw, Mapping) or not isinstance(raw.get("environments"), Mapping):
        raise EnvironmentSpecError(
            f"invalid environment file {path}", ["environments: must be a mapping of names"]
        )
    problems += unknown_problems(raw, ("environments",), "", "section")
    specs: dict[str, EnvironmentSpec] = {}
    for name, body in raw["environments"].items():
        where = f"environments.{name}"
        if not isinstance(name, str) or not NAME.match(name):
            problems.append(f"{where}: names are 1-24 of a-z, 0-9 and _, starting with a letter")
            continue
        if not isinstance(body, Mapping):
            problems.append(f"{where}: must be a mapping")
            continue
        problems += unknown_problems(body, _KEYS, f"{where}.", "setting")
        store, isolate = _store(body.get("store", "sqlite"), f"{where}.store", environ, problems)
        kv, database = _kv(body.get("kv"), f"{where}.kv", environ, problems)
        release = body.get("release")
        if release is not None and not isinstance(release, str | int):
            problems.append(f"{where}.release: must be a release name")
        fixtures = body.get("fixtures") or []
        if not isinstance(fixtures, list) or not all(isinstance(f, str) for f in fixtures):
            problems.append(f"{where}.fixtures: must be a list of file paths")
            fixtures = []
        paths = tuple(p if p.is_absolute() else app_dir / p for p in map(Path, fixtures))
        mocks = body.get("mocks") or {}
        if not isinstance(mocks, Mapping):
            problems.append(f"{where}.mocks: must be a mapping")
            mocks = {}
        specs[name] = EnvironmentSpec(
            name=name, store=store, isolate=isolate, kv=kv, kv_database=database,
            release=None if release is None else str(release), fixtures=paths,
            mocks=dict(mocks), description=str(body.get("description") or ""),
        )  # fmt: skip
    if problems:
        raise EnvironmentSpecError(
            f"invalid environment file {path}", [f"{path.name}: {p}" for p in problems]
        )
    return specs


def load_environments(
    app_dir: Path, env: Mapping[str, str] | None = None
) -> dict[str, EnvironmentSpec]:
    """The environments ``APP_DIR/environments.yaml`` declares."""
    path = app_dir / ENV_FILE
    if not path.is_file():
        raise EnvironmentSpecError(f"{path}: no environment file (declare environments there)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise EnvironmentSpecError(f"{path}: not valid YAML: {exc}") from exc
    return parse_environments(raw, app_dir.resolve(), path, env)
