"""The built wheel outside the repository: a core install (no extras) in a fresh virtualenv
scaffolds the hello app, runs one event, serves it over HTTP, and pulls no torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from sluice.testing import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in cmd],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel built from this checkout, installed without extras."""
    work = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", work / "dist", ROOT,
         cwd=work)  # fmt: skip
    wheels = list((work / "dist").glob("sluicegate-*.whl"))
    assert len(wheels) == 1
    _run(sys.executable, "-m", "venv", work / "venv", cwd=work)
    # As the Dockerfile installs it: the lock's pins as constraints.
    lock = ROOT / "requirements/constraints.txt"
    _run(work / "venv/bin/pip", "install", "-q", "-c", lock, wheels[0], cwd=work)
    return work / "venv"


def test_core_install_has_no_model_or_service_extras(venv: Path) -> None:
    shown = subprocess.run(
        [venv / "bin/pip", "show", "torch", "asyncpg", "redis"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert shown.returncode != 0
    assert "Package(s) not found: asyncpg, redis, torch" in shown.stderr


def test_the_wheel_carries_its_metadata_examples_and_types(venv: Path) -> None:
    (wheel,) = (venv.parent / "dist").glob("sluicegate-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = zf.read("sluicegate-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in meta
    assert "Classifier: Typing :: Typed" in meta
    assert "Project-URL: Source," in meta
    assert "Provides-Extra: models" in meta
    assert "sluice/py.typed" in names
    assert "sluicegate-0.1.0.dist-info/licenses/LICENSE" in names
    for example in ("hello", "triage", "gateway"):
        assert f"sluice/_examples/{example}/sluice.yaml" in names
    # BANKING77's attribution travels with its data; nothing an app builds when it runs does.
    assert "sluice/_examples/triage/data/banking77/LICENSE" in names
    assert not [n for n in names if "/.sluice/" in n or n.endswith(".db")]


def test_hello_from_the_wheel_runs_and_serves(venv: Path, tmp_path: Path) -> None:
    # Run from a directory outside the repository, with nothing of it on the path.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    sluice = venv / "bin/sluice"
    app = tmp_path / "hello"
    out = _run(sluice, "init", app, "--template", "hello", cwd=tmp_path, env=env)
    assert "created" in out
    (tmp_path / "in.json").write_text('{"name": "ada"}')
    result = json.loads(_run(sluice, "run", "greet", "--input", "in.json", "--app", app,
                             cwd=tmp_path, env=env))  # fmt: skip
    assert result["status"] == "done"
    assert result["result"]["greeting"] == "Hello, Ada!"
    key = _run(sluice, "apikey", "create", "--tenant", "acme", "--app", app, cwd=tmp_path,
               env=env).strip()  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [sluice, "serve", app, "--port", str(port)], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.2)
        resp = httpx.post(
            f"{base}/v1/workflows/greet/runs?wait=10",
            json={"name": "grace"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["result"]["greeting"] == "Hello, Grace!"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_missing_extra_is_named_with_its_install_command(venv: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    app = tmp_path / "pg"
    _run(venv / "bin/sluice", "init", app, cwd=tmp_path, env=env)
    config = (app / "sluice.yaml").read_text()
    (app / "sluice.yaml").write_text(
        config.replace("sqlite:///.sluice/hello.db", "postgresql://127.0.0.1/test")
    )
    done = subprocess.run(
        [venv / "bin/sluice", "runs", "list", "--app", app],
        check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "pip install 'sluicegate[postgres]'" in done.stderr
