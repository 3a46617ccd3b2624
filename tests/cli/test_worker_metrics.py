"""``sluice worker --metrics-port``: a worker serves /metrics, /healthz and /readyz, and still
stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sluice.examples import example_dir
from sluice.testing import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_worker_serves_metrics_and_health_then_stops_on_sigterm(tmp_path: Path) -> None:
    app = tmp_path / "hello"
    shutil.copytree(example_dir("hello"), app)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SLUICE_METRICS_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sluice", "worker", str(app)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                ready = httpx.get(f"{base}/readyz", timeout=1)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the worker's metrics port never answered"
            time.sleep(0.2)
        assert set(ready.json()["pools"]) == {"cpu", "io"}
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        metrics = httpx.get(f"{base}/metrics")
        assert metrics.status_code == 200
        assert 'pool="cpu"' in metrics.text
        assert httpx.get(f"{base}/v1/status").status_code == 404  # no API on a worker
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()
    assert b"worker stopped" in out


def test_serve_and_worker_take_the_app_as_an_option_too(tmp_path: Path) -> None:
    """``--app`` as on every other command; two different app directories are refused."""
    app = tmp_path / "hello"
    shutil.copytree(example_dir("hello"), app)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for command in ("serve", "worker"):
        both = subprocess.run(
            [sys.executable, "-m", "sluice", command, str(tmp_path), "--app", str(app)],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert both.returncode == 2
        assert "two app directories given" in both.stderr
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sluice", "serve", "--app", str(app), "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    # It served the hello app: its store file is where that app's sluice.yaml puts it.
    assert (app / ".sluice" / "hello.db").exists()
