"""What every drill shares: its options, its report, and running an app for real.

A drill starts the app as it is deployed (``sluice serve`` and ``sluice worker`` processes on
a fresh store), loads it over HTTP, hurts it, and ends with a :class:`DrillReport`. The
helpers here start those processes, send events with idempotency keys, and count what the
store holds at the end.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sluice.config import AppSettings, load_settings
from sluice.errors import ConfigError
from sluice.workflow.model import Workflow
from sluice.workflow.registry import WorkflowRegistry

SLUICE = [sys.executable, "-m", "sluice"]


@dataclass
class DrillReport:
    """What a drill measured; ``passed`` is the verdict.

    Every drill reports the same accounting of events (accepted, completed, lost, duplicates,
    dead); ``figures`` holds the drill's own measurements and ``checks`` each pass condition
    with its verdict, so a failed drill says which promise it broke.
    """

    drill: str
    passed: bool
    accepted: int
    completed: int
    lost: int
    duplicates: int
    dead: int
    seconds: float
    figures: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The report as one flat JSON-ready object: the accounting, then the figures."""
        core = asdict(self)
        figures = core.pop("figures")
        return {**core, **figures}


@dataclass(frozen=True)
class DrillOptions:
    """What ``sluice chaos`` passes to every drill; each drill reads the options it needs.

    ``factor`` is the offered load as a multiple of capacity (throttle-model, flood) and
    ``seconds`` how long the load lasts; ``kills`` is for kill-worker.
    """

    app_dir: Path
    workflow: str
    inputs: Sequence[dict[str, Any]]
    kills: int = 3
    factor: float = 10.0
    seconds: float = 20.0
    progress: Callable[[str], None] = lambda _: None


def load_workflow(app_dir: Path, name: str) -> tuple[AppSettings, Workflow]:
    """An app's settings and its workflow ``name``, loaded and validated as serving would."""
    settings = load_settings(app_dir)
    if settings.workflows_dir is None:
        raise ConfigError(f"{app_dir}: no workflow directory configured")
    registry = WorkflowRegistry.from_directory(settings.workflows_dir, settings.pools)
    return settings, registry.get(name)


def spawn(args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``sluice ARGS`` with ``env``, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen([*SLUICE, *args], env=env, stdout=out, stderr=subprocess.STDOUT)


async def send_all(
    client: httpx.AsyncClient, workflow: str, inputs: Sequence[dict[str, Any]], concurrency: int
) -> dict[str, str]:
    """Send every input once (retrying lost answers with the same key); key -> event id."""
    accepted: dict[str, str] = {}
    todo = iter(enumerate(inputs))

    async def sender() -> None:
        for n, data in todo:
            key = f"drill-{n}"
            while True:
                try:
                    resp = await client.post(f"/v1/workflows/{workflow}/runs", json=data,
                                             headers={"idempotency-key": key})  # fmt: skip
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
                    continue
                if resp.status_code == 202:
                    accepted[key] = resp.json()["event_id"]
                    break
                await asyncio.sleep(0.05 if resp.status_code in (429, 503) else 0.2)

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return accepted


async def count_events(app_dir: Path, env: dict[str, str], limit: int) -> int:
    """How many events the app's store (as ``env`` configures it) holds, up to ``limit``."""
    from sluice.app import build_store, encryption_codec
    from sluice.config import load_settings

    settings = load_settings(app_dir, environ=env)
    store = build_store(settings, encryption_codec(settings))
    await store.open()
    try:
        return len(await store.list_events(limit=limit))
    finally:
        await store.aclose()


async def final_views(
    client: httpx.AsyncClient, ids: list[str], stall_s: float = 60.0
) -> dict[str, dict[str, Any]]:
    """Every event's run view once it has ended.

    When none has ended for ``stall_s``, the rest are reported as ``{"status": "accepted"}``.
    """
    views: dict[str, dict[str, Any]] = {}
    todo = list(ids)
    gate = asyncio.Semaphore(16)
    last_progress = time.monotonic()

    async def fetch(event_id: str) -> None:
        async with gate:
            view: dict[str, Any] = (await client.get(f"/v1/runs/{event_id}")).json()
        if view.get("status") != "accepted":
            views[event_id] = view

    while todo and time.monotonic() - last_progress < stall_s:
        before = len(views)
        await asyncio.gather(*(fetch(i) for i in todo))
        todo = [i for i in todo if i not in views]
        if len(views) > before:
            last_progress = time.monotonic()
        if todo:
            await asyncio.sleep(0.5)
    for event_id in todo:
        views[event_id] = {"status": "accepted"}
    return views


def keep_log(log: Path, drill: str) -> Path:
    """Copy a failed drill's process log out of its temporary directory; return the copy."""
    kept = Path(".sluice") / "drills" / f"{drill}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(log, kept)
    return kept


def dead_reasons(views: dict[str, dict[str, Any]], most: int = 5) -> dict[str, int]:
    """The commonest errors of dead events (event ids and figures stripped), with counts."""
    reasons: dict[str, int] = {}
    for view in views.values():
        if view.get("status") == "dead":
            reason = re.sub(r"\d+(\.\d+)?", "N", str(view.get("error", "")))[:160]
            reasons[reason] = reasons.get(reason, 0) + 1
    return dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:most])


async def settle(client: httpx.AsyncClient, event_ids: list[str]) -> dict[str, str]:
    """Every event's final status (``accepted`` for those still moving after a minute)."""
    return {
        i: str(v.get("status", "unknown"))
        for i, v in (await final_views(client, event_ids)).items()
    }


async def create_api_key(app_dir: Path, env: dict[str, str], tenant: str = "drill") -> str:
    """A new API key of ``tenant`` in the store ``env`` configures (``sluice apikey create``).

    An operator key, since drills read the whole of ``/v1/status`` (caches, guards, breakers).
    """
    roles = ("--role", "runner", "--role", "operator")
    created = await asyncio.to_thread(
        subprocess.run,
        [*SLUICE, "apikey", "create", "--tenant", tenant, *roles, "--app", str(app_dir)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return created.stdout.strip()
