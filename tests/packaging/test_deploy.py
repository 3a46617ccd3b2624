"""The container files checked without a container engine: the compose topology against the
services and settings Sluice expects, and every Sluice command in them parsed by the real
command line."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from sluice.cli.main import build_app
from sluice.config import load_settings
from sluice.examples import example_dir

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
SLUICE_ROLES = ("migrate", "gateway", "worker")
# What the Dockerfile's final stage sets for every role.
IMAGE_ENV = {"SLUICE_APP": "/srv/app", "SLUICE_HOST": "0.0.0.0", "SLUICE_PORT": "8000"}  # noqa: S104 - a container listens on all its interfaces


def _parse(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Parse ``sluice ARGS`` with ``env`` as the environment, as the process would start."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    command: Any = typer.main.get_command(build_app())
    ctx = command.make_context("sluice", list(args))
    rest = list(args)
    while hasattr(command, "resolve_command"):  # a group: descend to the named command
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None, f"unknown command in {args}"
        ctx = sub.make_context(str(name), rest, parent=ctx)  # raises on a bad option or value
        command = sub


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {**IMAGE_ENV, **{k: str(v) for k, v in service["environment"].items()}}


def test_the_topology_has_every_role() -> None:
    assert set(SERVICES) == {
        "postgres", "redis", "migrate", "gateway", "worker", "otel-collector", "prometheus",
        "grafana",
    }  # fmt: skip
    assert SERVICES["worker"]["deploy"]["replicas"] >= 2
    assert "--no-workers" in SERVICES["gateway"]["command"]
    for role in ("gateway", "worker"):
        depends = SERVICES[role]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("role", SLUICE_ROLES)
def test_each_role_is_a_valid_sluice_command(role: str, monkeypatch: pytest.MonkeyPatch) -> None:
    service = SERVICES[role]
    _parse(service["command"], _env(service), monkeypatch)


def test_bad_commands_are_caught_by_the_same_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # The command line's own usage errors (typer's, which it does not export by type).
    with pytest.raises(Exception, match="No such option: --no-such-option"):
        _parse(["serve", "--no-such-option"], IMAGE_ENV, monkeypatch)
    with pytest.raises(Exception, match="valid integer"):
        _parse(["worker"], {**IMAGE_ENV, "SLUICE_METRICS_PORT": "nine"}, monkeypatch)


@pytest.mark.parametrize("role", SLUICE_ROLES)
def test_the_app_reads_the_shared_services_from_the_environment(role: str) -> None:
    env = _env(SERVICES[role])
    settings = load_settings(example_dir("triage"), environ=env)
    assert settings.store == env["SLUICE_STORE"]
    assert settings.store.startswith("postgresql://sluice:sluice@postgres:5432/")
    assert settings.kv == "redis://redis:6379/0"
    postgres = SERVICES["postgres"]["environment"]
    assert f"{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@" in settings.store
    assert settings.store.split("/")[3].split("?")[0] == postgres["POSTGRES_DB"]
    collector = env["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert collector == "http://otel-collector:4318"
    otel = yaml.safe_load((DEPLOY / "otel/collector.yaml").read_text())
    assert otel["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    assert otel["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]


def test_prometheus_scrapes_every_sluice_process_where_it_listens() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus/compose.yml").read_text())
    jobs = {job["job_name"]: job["dns_sd_configs"][0] for job in config["scrape_configs"]}
    assert jobs["sluice-gateway"]["names"] == ["gateway"]
    assert jobs["sluice-gateway"]["port"] == int(IMAGE_ENV["SLUICE_PORT"])
    assert SERVICES["gateway"]["ports"] == [f"8000:{IMAGE_ENV['SLUICE_PORT']}"]
    assert jobs["sluice-worker"]["names"] == ["worker"]
    worker_env = SERVICES["worker"]["environment"]
    assert jobs["sluice-worker"]["port"] == int(worker_env["SLUICE_METRICS_PORT"])
    assert config["rule_files"] == ["alerts.yml"]


def test_every_mounted_file_exists() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name}: {source} is missing"
    assert SERVICES["migrate"]["build"] == {"context": "..", "dockerfile": "Dockerfile"}
    assert (DEPLOY / ".." / "Dockerfile").is_file()


def _stages() -> list[list[str]]:
    """The Dockerfile's instructions per stage, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_the_image_is_multi_stage_slim_non_root_and_health_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    build, runtime = _stages()
    assert build[0].startswith("FROM python:${PYTHON}-slim AS build")
    assert runtime[0] == "FROM python:${PYTHON}-slim"
    user = [line for line in runtime if line.startswith("USER ")]
    assert user == ["USER sluice"]
    assert any(line.startswith("HEALTHCHECK ") and "/healthz" in line for line in runtime)
    assert "EXPOSE 8000 9100" in runtime
    # torch only ever as the pinned CPU build.
    assert all("torch==2.13.0" in line for line in build if "torch" in line and "pip" in line)
    # The default command and the build's own sluice commands parse.
    cmd = next(line for line in runtime if line.startswith("CMD "))
    entry = next(line for line in runtime if line.startswith("ENTRYPOINT "))
    assert yaml.safe_load(entry.removeprefix("ENTRYPOINT ")) == ["sluice"]
    _parse(yaml.safe_load(cmd.removeprefix("CMD ")), IMAGE_ENV, monkeypatch)
    runs = " ".join(line for line in build if line.startswith("RUN "))
    for part in runs.split("/opt/sluice/bin/sluice ")[1:]:
        args = shlex.split(part.split("&&")[0].split(";")[0])
        _parse(args, IMAGE_ENV, monkeypatch)
