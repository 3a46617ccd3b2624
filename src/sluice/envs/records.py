"""What ``sluice env up`` made, kept in ``APP_DIR/.sluice/envs/NAME.json`` until ``env down``.

The record names every resource the environment owns (the schema or database, the key prefix,
the files), so ``env down`` removes exactly those and nothing else. A record is created with
``O_EXCL`` before anything is made: two ``env up`` of one name cannot both proceed.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from sluice.envs.errors import EnvironmentStateError

RECORD_DIR = Path(".sluice") / "envs"


@dataclass(frozen=True, slots=True)
class EnvironmentRecord:
    """One live environment and everything it owns."""

    name: str
    app_dir: str
    created_at: float
    #: ``sqlite`` or ``postgres``; ``isolate`` is ``file``, ``schema`` or ``database``.
    store_kind: str
    isolate: str
    #: The store URL the app uses inside the environment (its own schema, database or file).
    store_url: str = ""
    #: The KV URL the app uses inside the environment (its own key prefix), or memory://.
    kv_url: str = "memory://"
    schema: str | None = None
    database: str | None = None
    #: The server URL the database was created on (``isolate: database``).
    server_url: str | None = None
    kv_prefix: str | None = None
    files: tuple[str, ...] = ()
    release: str | None = None
    mocks: dict[str, Any] = field(default_factory=dict)
    #: ``ready`` once made and migrated; ``making`` while ``env up`` runs (or if it died).
    status: str = "making"
    seeded: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object (``sluice env show``), passwords in URLs hidden."""
        data = asdict(self)
        for key in ("store_url", "kv_url", "server_url"):
            if data[key]:
                data[key] = hide_password(data[key])
        return data


def hide_password(url: str) -> str:
    """``url`` with the password of its user, if any, replaced by ``***``."""
    head, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return url
    return f"{head}://{creds.split(':', 1)[0]}:***@{host}"


def _dir(app_dir: Path) -> Path:
    return app_dir / RECORD_DIR


def record_path(app_dir: Path, name: str) -> Path:
    """Where the record of ``name`` lives."""
    return _dir(app_dir) / f"{name}.json"


def reserve(app_dir: Path, record: EnvironmentRecord) -> None:
    """Write the first record of a new environment; refuse a name that exists."""
    path = record_path(app_dir, record.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise EnvironmentStateError(
            f"environment {record.name!r} exists already ({path}); "
            f"`sluice env down {app_dir} {record.name}` removes it"
        ) from None
    with os.fdopen(fd, "wb") as out:
        out.write(orjson.dumps(asdict(record), option=orjson.OPT_INDENT_2))


def save(app_dir: Path, record: EnvironmentRecord) -> None:
    """Replace the record atomically."""
    path = record_path(app_dir, record.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(orjson.dumps(asdict(record), option=orjson.OPT_INDENT_2))
    os.chmod(tmp, 0o600)  # it may hold a server password
    tmp.replace(path)


def load(app_dir: Path, name: str) -> EnvironmentRecord | None:
    """The record of ``name``, or None when there is no such environment."""
    path = record_path(app_dir, name)
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise EnvironmentStateError(f"{path}: unreadable environment record: {exc}") from exc
    try:
        record = EnvironmentRecord(**data)
    except TypeError as exc:
        raise EnvironmentStateError(f"{path}: not an environment record: {exc}") from exc
    return replace(record, files=tuple(record.files), seeded=tuple(record.seeded))


def load_all(app_dir: Path) -> list[EnvironmentRecord]:
    """Every recorded environment of the app, by name."""
    folder = _dir(app_dir)
    if not folder.is_dir():
        return []
    found = [load(app_dir, path.stem) for path in sorted(folder.glob("*.json"))]
    return [record for record in found if record is not None]


def forget(app_dir: Path, name: str) -> None:
    """Delete the record (the environment's resources are gone)."""
    record_path(app_dir, name).unlink(missing_ok=True)
