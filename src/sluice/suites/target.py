"""The app under test: what every gate of ``sluice test`` is given.

A :class:`Target` is an app directory with its settings and workflows loaded once, the
release under test (recorded in reports; releases are named, not yet deployed, by Sluice),
and two ways to exercise it in the test's own process:

- :meth:`Target.run_inputs` sends inputs through a workflow for real: the app is started
  with :class:`~sluice.testing.TestApp` (its pools, steps, models, indexes; a temporary
  SQLite store unless ``store`` names another) and each input goes in over its HTTP API;
- :meth:`Target.cascade` builds the cascade of the workflow's ``classify`` step from the
  app's models, as ``sluice eval`` does, for metrics over many labelled rows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.config import AppSettings, load_settings
from sluice.errors import ConfigError
from sluice.models.base import Model
from sluice.models.cascade import Cascade, Tier
from sluice.workflow.model import Step, Workflow
from sluice.workflow.registry import WorkflowRegistry

if TYPE_CHECKING:  # started lazily: a gate that only measures models never loads it
    from sluice.testing.app import TestApp

#: The folder of an app that holds its suites (``tests/suites.yaml`` names the gates).
TESTS_DIR = "tests"
#: Runs in flight at once in :meth:`Target.run_inputs`: few, so that on a busy machine the
#: queueing stays inside a workflow's SLO (a guard that sheds load answers 503, and a golden
#: suite checks answers, not capacity); the cores are busy either way.
DEFAULT_IN_FLIGHT = 8
#: Submissions of one input answered 429/503 (backpressure) before its case fails, each
#: after the answer's Retry-After, at most MAX_RETRY_AFTER_S.
SUBMIT_ATTEMPTS = 4
MAX_RETRY_AFTER_S = 10.0


@dataclass(frozen=True, slots=True)
class RunOutput:
    """One input's run: ``status`` (``done``, ``dead``, or ``refused`` when the app did not
    accept it or it did not finish in time), the ``result`` of a done run, the ``error``
    otherwise, and the seconds from submit to its end."""

    status: str
    result: Mapping[str, Any] | None
    error: str | None
    seconds: float


@dataclass(slots=True)
class Target:
    """An app under test; build one with :meth:`load`.

    ``store`` is where its runs are kept (``None``: a temporary SQLite file; a URL, e.g. an
    environment's PostgreSQL); ``environ`` replaces the process's ``SLUICE_*`` variables;
    ``services`` are added to the app's own (fakes, or an environment's);
    ``model_overrides`` replace models of the app's ``models:`` by name in :meth:`cascade`.
    """

    app_dir: Path
    settings: AppSettings
    workflows: WorkflowRegistry
    release: str | None = None
    store: str | None = None
    environ: Mapping[str, str] | None = None
    services: Mapping[str, Any] | None = None
    model_overrides: Mapping[str, Model] | None = None
    _models: dict[str, Model] | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls,
        app_dir: Path,
        *,
        release: str | None = None,
        store: str | None = None,
        environ: Mapping[str, str] | None = None,
        services: Mapping[str, Any] | None = None,
        model_overrides: Mapping[str, Model] | None = None,
    ) -> Target:
        """Load the app's settings and workflows (configuration errors raise here)."""
        settings = load_settings(app_dir, environ=environ)
        if settings.workflows_dir is None:
            raise ConfigError(f"{app_dir}: the app has no workflows directory")
        registry = WorkflowRegistry.from_directory(settings.workflows_dir, settings.pools)
        return cls(
            app_dir=app_dir,
            settings=settings,
            workflows=registry,
            release=release,
            store=store,
            environ=environ,
            services=services,
            model_overrides=model_overrides,
        )

    @property
    def tests_dir(self) -> Path:
        """``APP_DIR/tests``: the suites, snapshots and ``suites.yaml``."""
        return self.app_dir / TESTS_DIR

    def workflow(self, name: str) -> Workflow:
        """The workflow ``name`` (latest version); unknown names raise ConfigError."""
        names = sorted({wf.name for wf in self.workflows})
        if name not in names:
            raise ConfigError(f"{self.app_dir}: no workflow {name!r} (have {', '.join(names)})")
        return self.workflows.get(name)

    def run_inputs(
        self,
        workflow: str,
        inputs: Sequence[Any],
        *,
        in_flight: int = DEFAULT_IN_FLIGHT,
        on_done: Callable[[], None] | None = None,
    ) -> list[RunOutput]:
        """Run every input through ``workflow`` in a started app, at most ``in_flight`` at
        once; the outputs in the order of ``inputs``. ``on_done`` is called after each."""
        self.workflow(workflow)
        return asyncio.run(self._run_inputs(workflow, inputs, in_flight, on_done))

    async def _run_inputs(
        self,
        workflow: str,
        inputs: Sequence[Any],
        in_flight: int,
        on_done: Callable[[], None] | None,
    ) -> list[RunOutput]:
        from sluice.testing.app import TestApp

        gate = asyncio.Semaphore(max(1, in_flight))
        source: Path | AppSettings = self.settings
        async with TestApp(source, store=self.store, services=self.services) as app:

            async def one(data: Any) -> RunOutput:
                async with gate:
                    started = time.perf_counter()
                    try:
                        view = await _run_once(app, workflow, data)
                    except AssertionError as exc:  # refused at the door, or never finished
                        return RunOutput("refused", None, str(exc), time.perf_counter() - started)
                    seconds = time.perf_counter() - started
                if on_done is not None:
                    on_done()
                error = view.get("error")
                return RunOutput(
                    status=str(view["status"]),
                    result=view.get("result"),
                    error=None if error is None else str(error),
                    seconds=seconds,
                )

            return list(await asyncio.gather(*(one(data) for data in inputs)))

    def classify_step(self, workflow: str | None = None) -> tuple[Workflow, Step]:
        """The one ``classify`` step of ``workflow`` (or of the app, when None)."""
        found = [
            (wf, step)
            for wf in self.workflows
            if workflow is None or wf.name == workflow
            for step in wf.steps
            if step.uses == "classify"
        ]
        if not found:
            suffix = f" named {workflow!r}" if workflow else ""
            raise ConfigError(f"{self.app_dir}: no workflow with a 'classify' step{suffix}")
        if len(found) > 1:
            names = ", ".join(f"{wf.name}.{step.name}" for wf, step in found)
            raise ConfigError(f"{self.app_dir}: several classify steps ({names}); name one")
        return found[0]

    def models(self) -> dict[str, Model]:
        """The app's models (``models:``), built once (local ones train if they must), with
        ``model_overrides`` in place of those they name (which are then not built)."""
        if self._models is None:
            from sluice.models.registry import build_models

            overrides = dict(self.model_overrides or {})
            spec = self.settings.extra.get("models") or {}
            rest = {name: entry for name, entry in spec.items() if name not in overrides}
            self._models = {**build_models(rest, self.settings.app_dir), **overrides}
        return self._models

    def cascade(self, workflow: str | None = None) -> Cascade:
        """The cascade of the ``classify`` step, uncached, as ``sluice eval`` runs it."""
        _, step = self.classify_step(workflow)
        return Cascade(cascade_tiers(step, self.models()))


async def _run_once(app: TestApp, workflow: str, data: Any) -> dict[str, Any]:
    """Submit ``data`` as a client would, honouring backpressure (429/503 and Retry-After,
    a bounded number of times), then wait for the run; AssertionError when it is refused."""
    headers = app.auth()
    url = f"/v1/workflows/{workflow}/runs"
    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        resp = await app.http.post(url, json=data, headers=headers)
        if resp.status_code not in (429, 503) or attempt == SUBMIT_ATTEMPTS:
            break
        try:
            wait_s = float(resp.headers.get("retry-after", "1"))
        except ValueError:
            wait_s = 1.0
        await asyncio.sleep(min(max(wait_s, 0.1), MAX_RETRY_AFTER_S))
    if resp.status_code != 202:
        raise AssertionError(f"run of {workflow!r} answered {resp.status_code}: {resp.text}")
    view: dict[str, Any] = await app.wait(resp.json()["event_id"])
    return view


def cascade_tiers(step: Step, models: Mapping[str, Model]) -> list[Tier]:
    """The tiers of ``step``'s ``cascade`` option over ``models``."""
    spec: Any = step.options.get("cascade") or []
    try:
        return [Tier(models[str(t["model"])], float(t.get("threshold", 0.0))) for t in spec]
    except KeyError as exc:
        raise ConfigError(f"step {step.name!r}: cascade names unknown model {exc}") from None
