"""The security gate of a pipeline (``sluice ci security APP``): three checks, as results.

- ``security:bandit``: bandit over the app's step code (every ``.py`` file of the app); an
  issue of medium or high severity, found with medium or high confidence, fails it.
- ``security:secrets``: detect-secrets over the app's text files (and any other paths given);
  a line that must keep a made-up secret (a test's, a demo's) says so with detect-secrets'
  ``pragma: allowlist secret`` comment.
- ``security:lock``: every requirement of the lock file pinned to one version (``name==X``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings

from sluice.contracts.results import CheckResult

_SHOWN = 5
_TEXT_SUFFIXES = frozenset(
    {".py", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".env", ".txt", ".md", ".sh"}
)
_SKIPPED_DIRS = frozenset({".sluice", ".git", "__pycache__", ".venv", "node_modules"})
_MAX_SCANNED_BYTES = 1024 * 1024
_RANKS = {"LOW": 0, "MEDIUM": 1, "HIGH": 2}
_PINNED = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,.-]+\])?===?[^=<>~!*,\s]+"
    r"(\s*;.*)?(\s+--hash=\S+)*$"
)
_BANDIT_TIMEOUT_S = 300


def _files(roots: Iterable[Path], suffixes: frozenset[str]) -> list[Path]:
    out = []
    for root in roots:
        candidates = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in candidates:
            if _SKIPPED_DIRS.intersection(path.parts) or not path.is_file():
                continue
            if path.suffix in suffixes and path.stat().st_size <= _MAX_SCANNED_BYTES:
                out.append(path)
    return out


def check_bandit(app_dir: Path) -> CheckResult:
    """bandit over the app's Python files."""
    started = time.perf_counter()
    files = _files([app_dir], frozenset({".py"}))
    if not files:
        return CheckResult(
            "security:bandit",
            True,
            f"bandit: {app_dir} has no Python step code",
            {"files": 0, "issues": 0},
            (),
            time.perf_counter() - started,
        )
    proc = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-f", "json", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=_BANDIT_TIMEOUT_S,
        check=False,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return CheckResult(
            "security:bandit",
            False,
            f"bandit: could not run: {reason}",
            {"files": len(files)},
            (),
            time.perf_counter() - started,
        )
    issues = report.get("results", [])
    serious = [
        i
        for i in issues
        if _RANKS.get(i.get("issue_severity", ""), 0) >= 1
        and _RANKS.get(i.get("issue_confidence", ""), 0) >= 1
    ]
    shown = tuple(
        f"{i['filename']}:{i['line_number']}: {i['test_id']} {i['issue_text']}"
        for i in serious[:_SHOWN]
    )
    message = (
        f"bandit: {len(serious)} medium/high issues in {len(files)} files "
        f"({len(issues)} issues of any severity)"
    )
    if shown:
        message += f"; first: {shown[0]}"
    figures = {"files": len(files), "issues": len(issues), "serious": len(serious)}
    return CheckResult(
        "security:bandit", not serious, message, figures, shown, time.perf_counter() - started
    )


def check_secrets(paths: Sequence[Path]) -> CheckResult:
    """detect-secrets over the text files under ``paths``."""
    started = time.perf_counter()
    files = _files(paths, _TEXT_SUFFIXES)
    secrets = SecretsCollection()
    with default_settings():
        for path in files:
            secrets.scan_file(str(path))
    found = sorted((filename, secret.line_number or 0, secret.type) for filename, secret in secrets)
    shown = tuple(f"{name}:{line}: {kind}" for name, line, kind in found[:_SHOWN])
    message = f"secrets: {len(found)} possible secrets in {len(files)} files"
    if shown:
        message += f"; first: {shown[0]} (a made-up one: add '# pragma: allowlist secret')"
    return CheckResult(
        "security:secrets",
        not found,
        message,
        {"files": len(files), "secrets": len(found)},
        shown,
        time.perf_counter() - started,
    )


def _requirements(lines: Sequence[str]) -> list[tuple[int, str]]:
    """(first line number, requirement) of a requirements file: comments dropped, lines
    continued with a backslash joined, and ``--hash`` options (a hashed lock) set aside."""
    found: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(lines, 1):
        line = raw.split(" #")[0].strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = number
        continued = line.endswith("\\")
        pending.append(line.rstrip("\\").strip())
        if continued:
            continue
        words = " ".join(pending).split()
        pending = []
        kept = [w for w in words if not w.startswith("--hash=")]
        if kept:
            found.append((start, " ".join(kept)))
    return found


def check_lock(lock: Path) -> CheckResult:
    """Every requirement line of ``lock`` pins one version."""
    started = time.perf_counter()
    try:
        lines = lock.read_text().splitlines()
    except OSError as exc:
        return CheckResult("security:lock", False, f"lock: cannot read {lock}: {exc.strerror}")
    loose = []
    count = 0
    for number, line in _requirements(lines):
        count += 1
        if line.startswith("-") or not _PINNED.match(line):
            loose.append(f"{lock}:{number}: {line} is not pinned (name==version)")
    message = f"lock: {count - len(loose)}/{count} requirements of {lock} pinned"
    if loose:
        message += f"; first: {loose[0]}"
    ok = not loose and count > 0
    if count == 0:
        message += "; the lock file lists no requirement"
    return CheckResult(
        "security:lock",
        ok,
        message,
        {"requirements": count, "unpinned": len(loose)},
        tuple(loose[:_SHOWN]),
        time.perf_counter() - started,
    )


def run_security(app_dir: Path, lock: Path, scan: Sequence[Path] = ()) -> list[CheckResult]:
    """The three checks of the security gate."""
    return [check_bandit(app_dir), check_secrets([app_dir, *scan]), check_lock(lock)]
