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
