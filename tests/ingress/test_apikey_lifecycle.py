"""API keys across processes: a revocation reaches every app within a second; keys expire."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from sluice.app import SluiceApp
from sluice.asgi import create_http_app
from sluice.config import load_settings
from sluice.errors import ConfigError, StoreError
from sluice.ingress.apikeys import ApiKeyAuth, create_api_key
from sluice.ingress.intake import Ingress
from sluice.ingress.settings import parse_ingress
from sluice.store.sqlite import SqliteStore
from tests.conftest import MakeApp
from tests.ingress.conftest import CONFIG, WORKFLOW
from tests.store.conftest import drop_test_schema, new_schema, postgres_schema_url

RUNS = "/v1/workflows/tickets/runs"
DEADLINE_S = 10.0  # generous: the shared machine may be slow; the bound asserted is 1 s


@asynccontextmanager
async def serving(new_app: Callable[[], SluiceApp]) -> AsyncIterator[httpx.AsyncClient]:
    app = new_app()
    gateway = Ingress(app, parse_ingress(app.settings))
    await app.start()
    try:
        transport = httpx.ASGITransport(app=create_http_app(app, gateway))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield http
    finally:
        await app.stop()


@pytest.fixture(params=["sqlite", "postgres"])
async def store_url(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """None: the app's own SQLite file; else a PostgreSQL schema of the test's own."""
    if request.param == "sqlite":
        yield None
        return
    schema = new_schema()
    yield postgres_schema_url(schema)
    await drop_test_schema(schema)


async def test_revocation_reaches_another_app_within_a_second(
    make_app: MakeApp, store_url: str | None
) -> None:
    """Two apps on one store: a key revoked through one is refused by the other within 1 s,
    though the other had the key cached (the cache keeps verified keys for 30 s)."""
    config = CONFIG if store_url is None else CONFIG.replace(
        "sqlite:///.sluice/ingress.db", store_url
    )  # fmt: skip
    app_dir = make_app(config, {"tickets.yaml": WORKFLOW})

    def new_app() -> SluiceApp:
        return SluiceApp.from_settings(load_settings(app_dir), run_pools=())

    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(serving(new_app))
        second = await stack.enter_async_context(serving(new_app))
        admin = new_app()
        await admin.store.open()
        stack.push_async_callback(admin.store.aclose)
        record, key = await create_api_key(admin.store, "acme")
        headers = {"authorization": f"Bearer {key}"}
        for http in (first, second):  # both now hold the key in their caches
            assert (await http.post(RUNS, json={"text": "x"}, headers=headers)).status_code == 202
        assert await admin.store.revoke_api_key(record.id)
        revoked = time.monotonic()
        statuses: dict[str, int] = {}
        while time.monotonic() - revoked < DEADLINE_S:
            for name, http in (("first", first), ("second", second)):
                if name not in statuses:
                    resp = await http.get("/v1/runs/nothing", headers=headers)
                    if resp.status_code == 401:
                        statuses[name] = resp.status_code
            if len(statuses) == 2:
                break
            await asyncio.sleep(0.02)
        lag = time.monotonic() - revoked
        print(f"revocation took effect in both apps after {lag * 1000:.0f} ms")  # information
        assert statuses == {"first": 401, "second": 401}, "a revoked key kept working"


async def test_expired_keys_are_refused_naming_the_expiry(make_app: MakeApp) -> None:
    """A key past its expiry time gets 401 saying so; a key with time left works."""
    app_dir = make_app(CONFIG, {"tickets.yaml": WORKFLOW})
    async with serving(
        lambda: SluiceApp.from_settings(load_settings(app_dir), run_pools=())
    ) as http:
        app_store = SluiceApp.from_settings(load_settings(app_dir), run_pools=()).store
        await app_store.open()
        try:
            # Time enough for the first request on a loaded machine; the test then waits
            # for the expiry itself, which is what it is about.
            soon_at = time.time() + 5.0
            _, soon = await create_api_key(app_store, "acme", expires_at=soon_at)
            _, later = await create_api_key(app_store, "acme", expires_at=time.time() + 3600)
            with pytest.raises(ConfigError, match="has passed"):
                await create_api_key(app_store, "acme", expires_at=time.time() - 1)
            with pytest.raises(ConfigError, match="unknown role"):
                await create_api_key(app_store, "acme", roles=["root"])
        finally:
            await app_store.aclose()
        ok = await http.post(RUNS, json={"text": "x"}, headers={"authorization": f"Bearer {soon}"})
        assert ok.status_code == 202  # verified, and now cached: the cache must not outlive it
        await asyncio.sleep(max(0.0, soon_at - time.time()) + 0.1)
        resp = await http.post(
            RUNS, json={"text": "x"}, headers={"authorization": f"Bearer {soon}"}
        )
        assert resp.status_code == 401
        assert resp.headers["content-type"] == "application/problem+json"
        assert "expired at" in resp.json()["detail"]
        fine = {"authorization": f"Bearer {later}"}
        assert (await http.post(RUNS, json={"text": "x"}, headers=fine)).status_code == 202


async def test_an_unreadable_store_keeps_cached_keys_for_their_time(tmp_path: Path) -> None:
    """The revocation check failing does not refuse keys already verified; once a key's cache
    time is up it must be read again, which fails."""
    store = SqliteStore(tmp_path / "keys.db")
    await store.open()
    _, key = await create_api_key(store, "acme")
    # A cache time long enough for the store to close on a loaded machine; the test then
    # waits out the rest of it.
    auth = ApiKeyAuth(store, cache_ttl_s=3.0, check_every_s=0.0)
    assert (await auth.authenticate(f"Bearer {key}")).tenant == "acme"
    cached_at = time.monotonic()  # at or after the moment the key was cached
    await store.aclose()
    assert (await auth.authenticate(f"Bearer {key}")).tenant == "acme"
    await asyncio.sleep(max(0.0, cached_at + 3.0 - time.monotonic()) + 0.1)
    with pytest.raises(StoreError):
        await auth.authenticate(f"Bearer {key}")
