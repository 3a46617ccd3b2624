"""Write requirements/lock.txt with the SHA-256 of every file of each pinned release.

    python requirements/add_hashes.py            # rewrite the lock in place (pins unchanged)

For each ``name==version`` line, the digests come from PyPI's simple index (every wheel and
sdist of that release, so the lock installs on any platform PyPI serves) and from the local
package folders pip is configured with here (``/opt/pypi*/simple``, ``/opt/wheels``), whose
builds may differ from PyPI's (torch's CPU build). ``make install`` then installs with
``pip install --require-hashes``: a file whose digest is not listed is refused. It also
writes ``constraints.txt``, the same pins without digests, for ``pip install -c``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import urllib.request
from pathlib import Path

LOCK = Path(__file__).with_name("lock.txt")
#: The same pins without digests, for ``pip install -c`` (a constraints file with digests
#: would put every other requirement of that install into hash-checking mode too).
CONSTRAINTS = Path(__file__).with_name("constraints.txt")
LOCAL_INDEXES = [Path("/opt/pypi/simple"), Path("/opt/pypi-more/simple")]
LOCAL_WHEELS = Path("/opt/wheels")
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _matches(filename: str, name: str, version: str) -> bool:
    """Whether ``filename`` is a file of release ``version`` of ``name`` (a local build's
    ``+local`` version included)."""
    stem = re.sub(r"[-_.]+", "_", name).lower()
    lowered = filename.lower().replace("-", "_")
    base = version.split("+", maxsplit=1)[0]
    prefix = f"{stem}_{base}"
    return lowered.startswith((f"{prefix}_", f"{prefix}+", f"{prefix}.tar", f"{prefix}.zip"))


def pypi_digests(name: str, version: str) -> set[str]:
    """The sha256 of every file of ``name==version`` on PyPI (its JSON simple index)."""
    request = urllib.request.Request(
        f"https://pypi.org/simple/{_normal(name)}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - fixed https URL
        files = json.load(response)["files"]
    return {
        f["hashes"]["sha256"]
        for f in files
        if "sha256" in f.get("hashes", {}) and _matches(f["filename"], name, version)
    }


def local_digests(name: str, version: str) -> set[str]:
    """The sha256 of matching files in the local indexes and wheel folder."""
    found: set[str] = set()
    for index in LOCAL_INDEXES:
        page = index / _normal(name) / "index.html"
        if page.is_file():
            for filename, digest in re.findall(r'href="[^"]*/([^/"#]+)#sha256=([0-9a-f]{64})"',
                                               page.read_text()):  # fmt: skip
                if _matches(filename, name, version):
                    found.add(digest)
    if LOCAL_WHEELS.is_dir():
        for path in LOCAL_WHEELS.iterdir():
            if _matches(path.name, name, version):
                found.add(hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def main() -> int:
    """Rewrite the lock with hashes; exit 1 naming any pin with no file found."""
    out: list[str] = []
    pins: list[str] = []
    missing: list[str] = []
    for raw in LOCK.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("--hash", "#")):
            if not line.startswith("--hash"):
                out.append(raw)
            continue
        match = _PIN.match(line)
        if match is None:
            raise SystemExit(f"{LOCK}: not a name==version pin: {line!r}")
        name, version = match.groups()
        digests = sorted(pypi_digests(name, version) | local_digests(name, version))
        if not digests:
            missing.append(f"{name}=={version}")
        print(f"{name}=={version}: {len(digests)} files", file=sys.stderr)
        pins.append(f"{name}=={version}")
        out.append(f"{name}=={version}" + "".join(f" \\\n    --hash=sha256:{d}" for d in digests))
    if missing:
        print(f"no files found for: {', '.join(missing)}", file=sys.stderr)
        return 1
    LOCK.write_text("\n".join(out) + "\n")
    CONSTRAINTS.write_text(
        "# The pins of lock.txt without digests, for `pip install -c` (written by add_hashes.py).\n"
        + "\n".join(pins)
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
