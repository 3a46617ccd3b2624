"""A whole Sluice app started in the test's own process, with an HTTP client on its API.

:class:`TestApp` builds the app from its directory (or from settings), as ``sluice serve``
would, on a fresh SQLite store in a temporary directory, starts it (worker pools included)
and gives an :class:`httpx.AsyncClient` that calls the ASGI application directly, without a
socket. Requests go the whole way in (API key, rate limits, JSON Schema, PII masking,
idempotency, the durable accept) and steps run in the app's pools, so a test checks what a
client would see::

    async with TestApp(Path("examples/hello")) as app:
        run = await app.run("hello", {"name": "Ada"})
        assert run["status"] == "done"
        assert run["result"] == {...}

        resp = await app.http.post("/v1/workflows/hello/runs", json={}, headers=app.auth())
        assert resp.status_code == 422

Fakes go in through ``services`` (a :class:`~sluice.testing.ScriptedModel` in place of a
provider, say), exactly as the app's own services are reached by its steps.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.config import AppSettings, load_settings
from sluice.ingress.apikeys import OPERATOR_ROLE, RUNNER_ROLE, create_api_key
from sluice.ingress.intake import Ingress
from sluice.ingress.settings import parse_ingress

#: Run statuses after which nothing changes.
_FINAL = frozenset({"done", "dead"})


class TestApp:
    """A started app and an HTTP client on it; ``async with``, or :meth:`start` and
    :meth:`aclose`.

    ``source`` is an app directory (its ``sluice.yaml`` and ``SLUICE_*`` variables from
    ``environ``, else the process's) or :class:`~sluice.config.AppSettings`. ``store`` keeps
    the events: ``None`` (the default) is a new SQLite file in a temporary directory removed
    at the end; a URL (``postgresql://...``) uses that store. ``services`` are added to the
    app's services, by name, over the ones it wires itself. ``tenant`` is the tenant whose API
    key the helpers use unless told otherwise; its key holds the ``runner`` and ``operator``
    roles, so ``/v1/status`` answers it in full.
    """

    # Not a test class, though its name starts with "Test": pytest must not collect it.
    __test__ = False

    def __init__(
        self,
        source: Path | str | AppSettings,
        *,
        store: str | None = None,
        services: Mapping[str, Any] | None = None,
        tenant: str = "test",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._source = source
        self._store = store
        self._services = services
        self._environ = environ
        self.tenant = tenant
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._app: SluiceApp | None = None
        self._http: httpx.AsyncClient | None = None
        self._keys: dict[tuple[str, tuple[str, ...]], str] = {}

    @property
    def app(self) -> SluiceApp:
        """The running :class:`~sluice.app.SluiceApp` (its store, runtime, services, ...)."""
        if self._app is None:
            raise RuntimeError("the test app is not started")
        return self._app

    @property
    def http(self) -> httpx.AsyncClient:
        """A client on the app's HTTP API (base URL ``http://sluice.test``), without a key:
        pass :meth:`auth` as headers, or use :meth:`submit` and :meth:`wait`."""
        if self._http is None:
            raise RuntimeError("the test app is not started")
        return self._http

    async def start(self) -> None:
        """Build and start the app on its store; create the default tenant's key."""
        settings = self._settings()
        if self._store is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sluice-test-")
            store = f"sqlite:///{Path(self._tmp.name) / 'sluice.db'}"
        else:
            store = self._store
        settings = dataclasses.replace(settings, store=store)
        app = SluiceApp.from_settings(settings, services=self._services)
        gateway = Ingress(app, parse_ingress(settings))
        try:
            await app.start()
        except BaseException:
            self._cleanup()
            raise
        self._app = app
        transport = httpx.ASGITransport(app=create_http_app(app, gateway))
        # Generous: a step may take long on a loaded machine, and a timeout is no verdict.
        self._http = httpx.AsyncClient(
            transport=transport, base_url="http://sluice.test", timeout=60.0
        )
        await self.key(self.tenant, (RUNNER_ROLE, OPERATOR_ROLE))

    async def aclose(self) -> None:
        """Stop the app (its pools first) and remove the temporary store."""
        try:
            if self._http is not None:
                await self._http.aclose()
            if self._app is not None:
                await self._app.stop()
        finally:
            self._http = self._app = None
            self._keys.clear()
            self._cleanup()

    async def key(self, tenant: str | None = None, roles: Sequence[str] = (RUNNER_ROLE,)) -> str:
        """An API key for ``tenant`` (the default tenant when None) with ``roles``, made once
        per tenant and roles."""
        wanted = (self.tenant if tenant is None else tenant, tuple(roles))
        if wanted not in self._keys:
            _, self._keys[wanted] = await create_api_key(self.app.store, *wanted)
        return self._keys[wanted]

    def auth(self, tenant: str | None = None) -> dict[str, str]:
        """The ``Authorization`` header with the first key made for ``tenant`` (the default
        tenant's always exists; make others with :meth:`key` first)."""
        tenant = self.tenant if tenant is None else tenant
        for (owner, _), key in self._keys.items():
            if owner == tenant:
                return {"authorization": f"Bearer {key}"}
        raise KeyError(f"no API key for tenant {tenant!r}: make one with key({tenant!r}) first")

    async def submit(
        self,
        workflow: str,
        data: Any,
        *,
        tenant: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Start a run over HTTP (``POST /v1/workflows/{workflow}/runs``) as ``tenant``; return
        its event id. Any answer but 202 raises ``AssertionError`` with the response."""
        headers = await self._auth(tenant)
        if idempotency_key is not None:
            headers["idempotency-key"] = idempotency_key
        resp = await self.http.post(f"/v1/workflows/{workflow}/runs", json=data, headers=headers)
        if resp.status_code != 202:
            raise AssertionError(f"run of {workflow!r} answered {resp.status_code}: {resp.text}")
        event_id: str = resp.json()["event_id"]
        return event_id

    async def wait(
        self, event_id: str, *, tenant: str | None = None, timeout_s: float = 60.0
    ) -> dict[str, Any]:
        """The run as ``GET /v1/runs/{event_id}`` shows it to ``tenant`` once it is ``done``
        or ``dead`` (``status``, ``steps``, then ``result`` or ``error``). Raises
        ``AssertionError`` if it still runs after ``timeout_s``: the bound only stops a stuck
        test, it is not a measure."""
        await self.app.runtime.wait(event_id, timeout_s)
        resp = await self.http.get(f"/v1/runs/{event_id}", headers=await self._auth(tenant))
        if resp.status_code != 200:
            raise AssertionError(f"run {event_id} answered {resp.status_code}: {resp.text}")
        view: dict[str, Any] = resp.json()
        if view["status"] not in _FINAL:
            raise AssertionError(f"run {event_id} still {view['status']} after {timeout_s} s")
        return view

    async def run(self, workflow: str, data: Any, *, tenant: str | None = None) -> dict[str, Any]:
        """:meth:`submit` then :meth:`wait`: the finished run."""
        event_id = await self.submit(workflow, data, tenant=tenant)
        return await self.wait(event_id, tenant=tenant)

    async def _auth(self, tenant: str | None) -> dict[str, str]:
        """The tenant's header, with a runner key made first if it has none."""
        try:
            return self.auth(tenant)
        except KeyError:
            return {"authorization": f"Bearer {await self.key(tenant)}"}

    def _settings(self) -> AppSettings:
        if isinstance(self._source, AppSettings):
            return self._source
        return load_settings(Path(self._source), environ=self._environ)

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
