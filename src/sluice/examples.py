"""Where the example apps are: inside the installed package, or in a source checkout.

A wheel carries ``examples/hello``, ``examples/triage`` and ``examples/gateway`` as
``sluice/_examples/NAME`` (``pyproject.toml`` force-includes them), so ``sluice init``, the demo
and the drills work with no file of the repository. A source checkout (an editable install, or
``PYTHONPATH=src``) has no ``_examples`` folder and reads the repository's ``examples/`` in
place, so an edit to an example is seen at once.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sluice.errors import ConfigError

#: The apps ``sluice init --template`` can scaffold, in help order.
EXAMPLES = ("hello", "triage", "gateway")

_PACKAGED = Path(__file__).resolve().parent / "_examples"
_CHECKOUT = Path(__file__).resolve().parents[2] / "examples"

# What an app accumulates when it runs, never part of a scaffold: trained models and the
# retrieval index (.sluice/), SQLite stores, caches.
_RUNTIME_FILES = (".sluice", "*.db", "*.db-wal", "*.db-shm", "__pycache__", "*.pyc")


def example_dir(name: str) -> Path:
    """The directory of the example app ``name``, packaged or in the checkout."""
    if name not in EXAMPLES:
        raise ConfigError(f"unknown example {name!r} (expected one of: {', '.join(EXAMPLES)})")
    for root in (_PACKAGED, _CHECKOUT):
        candidate = root / name
        if (candidate / "sluice.yaml").is_file():
            return candidate
    raise ConfigError(
        f"example {name!r} is not installed: neither {_PACKAGED} nor {_CHECKOUT} holds it"
        " (reinstall sluicegate)"
    )


def is_packaged(path: Path) -> bool:
    """Whether ``path`` lies inside the installed package (read it, never write into it)."""
    return path.resolve().is_relative_to(_PACKAGED)


def scaffold(name: str, target: Path, *, force: bool = False) -> list[Path]:
    """Copy the example ``name`` into ``target``; return the files written, sorted.

    ``target`` must be missing or empty unless ``force`` (then files of the same name are
    overwritten and others kept). What an app builds when it runs is left out.
    """
    source = example_dir(name)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ConfigError(f"{target} is not empty (choose a new directory, or pass --force)")
    shutil.copytree(
        source, target, ignore=shutil.ignore_patterns(*_RUNTIME_FILES), dirs_exist_ok=True
    )
    return sorted(p for p in target.rglob("*") if p.is_file())


def working_copy(name: str) -> Path:
    """A directory of the example ``name`` that running it may write into.

    In a source checkout that is the example itself (models and indexes land in its
    ``.sluice/``, ignored by git). From a wheel it is a copy in the user's cache directory
    (``$XDG_CACHE_HOME/sluice/NAME``, made on first use), never the installed package.
    """
    source = example_dir(name)
    if not is_packaged(source):
        return source
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    target = cache / "sluice" / name
    if not (target / "sluice.yaml").is_file():
        scaffold(name, target, force=True)
    return target
