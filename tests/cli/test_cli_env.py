"""``serve`` and ``worker`` options from ``SLUICE_<OPTION>`` environment variables."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pytest
from typer.testing import CliRunner

from sluice.cli.main import build_app
from sluice.cli.runtime import serve, worker
from sluice.testing.servers import free_port
from tests.cli.test_cli_runtime import CONFIG, STEPS, WORKFLOWS
from tests.conftest import MakeApp


@pytest.mark.parametrize("command", [serve, worker])
def test_every_option_has_its_variable(command: Callable[..., None]) -> None:
    """Each parameter of serve and worker reads SLUICE_<NAME>, and --help shows it."""
    expected = [
        "SLUICE_APP" if name in ("app_dir", "app_option") else f"SLUICE_{name.upper()}"
        for name in inspect.signature(command).parameters
    ]
    shown = CliRunner().invoke(build_app(), [command.__name__, "--help"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0
    text = " ".join(shown.stdout.split())
    for variable in expected:
        assert f"env var: {variable}]" in text


def _env(**values: str) -> dict[str, str]:
    return {**os.environ, **{f"SLUICE_{k.upper()}": v for k, v in values.items()}}


def test_serve_from_the_environment_and_a_flag_wins(make_app: MakeApp) -> None:
    """serve takes its app, host and workers from the environment; --port beats SLUICE_PORT."""
    app = make_app(CONFIG, WORKFLOWS, STEPS)
    port = free_port()
    env = _env(app=str(app), host="127.0.0.1", port="1", workers="false")
    proc = subprocess.Popen([sys.executable, "-m", "sluice", "serve", "--port", str(port)], env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "sluice serve exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "sluice serve did not become ready"
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    ("variable", "value"), [("port", "eighty"), ("processes", "0"), ("workers", "maybe")]
)
def test_an_invalid_value_names_the_variable(make_app: MakeApp, variable: str, value: str) -> None:
    """A bad value from the environment is refused before anything starts, naming it."""
    app = make_app(CONFIG, WORKFLOWS, STEPS)
    done = subprocess.run(
        [sys.executable, "-m", "sluice", "serve", str(app)],
        env=_env(**{variable: value}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"SLUICE_{variable.upper()}" in done.stderr
