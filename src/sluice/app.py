"""Builds the object graph of one Sluice app from its settings, with one async lifecycle.

::

    settings = load_settings(Path("examples/hello"))
    async with SluiceApp.from_settings(settings) as app:
        event_id = await app.runtime.submit("hello", {"name": "Ada"})
        record = await app.runtime.wait(event_id, timeout=5)
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sluice.config import AppSettings, unknown_problems
from sluice.errors import ConfigError, MissingExtraError
from sluice.governance.secrets import (
    Secrets,
    SecretValue,
    redact,
    reference_problems,
    references,
    resolve_references,
)
from sluice.guard.crypto import AesGcmCodec
from sluice.kv.base import KV
from sluice.kv.settings import build_kv
from sluice.runtime.engine import Runtime
from sluice.services import Services, build_services
from sluice.store.base import Store
from sluice.store.codec import PayloadCodec
from sluice.store.sqlite import SqliteStore
from sluice.telemetry.metrics import Metrics, cache_gauges, runtime_gauges
from sluice.telemetry.settings import parse_telemetry
from sluice.telemetry.tracing import Telemetry
from sluice.workflow.registry import WorkflowRegistry


def encryption_codec(settings: AppSettings) -> PayloadCodec | None:
    """The AES-GCM codec when keys are configured, else None (payloads stored as they are).

    Keys come from ``SLUICE_ENCRYPTION_KEYS`` (``id=base64 id=base64``) with
    ``SLUICE_ENCRYPTION_ACTIVE``, or from the ``encryption`` section (``active`` and ``keys``,
    inline keys being for tests and demos only).
    """
    from sluice.guard.crypto import AesGcmCodec, Keyring

    section = settings.extra.get("encryption") or {}
    unknown = unknown_problems(section, ("active", "keys"), "encryption.", "setting")
    if unknown:
        raise ConfigError("invalid encryption section", unknown)
    keys = dict(section.get("keys") or {})
    for pair in settings.env.get("SLUICE_ENCRYPTION_KEYS", "").split():
        key_id, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError("SLUICE_ENCRYPTION_KEYS: expected 'id=base64' pairs")
        keys[key_id] = value
    if not keys:
        return None
    active = settings.env.get("SLUICE_ENCRYPTION_ACTIVE") or section.get("active")
    if not active:
        raise ConfigError("encryption: name the active key (encryption.active)")
    return AesGcmCodec(Keyring.from_base64(keys, str(active)))


def build_store(settings: AppSettings, codec: PayloadCodec | None = None) -> Store:
    """The store named by ``settings.store``."""
    if settings.store.startswith("sqlite:///"):
        return SqliteStore(
            settings.sqlite_path(),
            codec=codec,
            synchronous=settings.runtime.synchronous,
            max_batch=settings.runtime.max_batch,
        )
    if settings.store.startswith(("postgresql://", "postgres://")):
        try:  # asyncpg is the ``postgres`` extra: only deployments that use it pay
            from sluice.store.postgres import PostgresStore
        except ModuleNotFoundError as exc:
            raise MissingExtraError("store: a postgresql:// URL", "postgres", "asyncpg") from exc

        return PostgresStore(settings.store, codec=codec, max_batch=settings.runtime.max_batch)
    raise ConfigError(
        f"store: unsupported URL {settings.store!r}"
        " (expected sqlite:///PATH or postgresql://HOST/DB)"
    )


def resolve_secrets(
    settings: AppSettings, codec: PayloadCodec | None
) -> tuple[AppSettings, dict[str, SecretValue]]:
    """``settings`` with every ``${secret:NAME}`` of ``sluice.yaml`` replaced by the secret's
    value, read from the app's store once (apps without references never open it here), and
    the values used, so that an error about the resolved config can :func:`redact` them.
    """
    problems = reference_problems(dict(settings.extra))
    if problems:
        raise ConfigError("sluice.yaml: malformed secret references", problems)
    if not references(dict(settings.extra)):
        return settings, {}
    keys = codec if isinstance(codec, AesGcmCodec) else None
    outcome: list[Any] = []

    async def read() -> tuple[dict[str, Any], dict[str, SecretValue]]:
        if settings.store.startswith(("postgresql://", "postgres://")):
            from sluice.store.postgres import PostgresStore

            store: Store = PostgresStore(settings.store, codec=codec, pool_size=1, listen=False)
        else:
            store = build_store(settings, codec)
        await store.open()
        try:
            return await resolve_references(settings.extra, Secrets(store, keys))
        finally:
            await store.aclose()

    def run() -> None:
        # Building an app is synchronous and may happen inside a running event loop (a
        # test, an embedding server): the one read runs on a loop of its own thread.
        try:
            outcome.append(asyncio.run(read()))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
            outcome.append(exc)

    thread = threading.Thread(target=run, name="sluice-secrets")
    thread.start()
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    extra, values = outcome[0]
    return replace(settings, extra=extra), values


@dataclass
class SluiceApp:
    """The store, the workflows and the runtime of one process, started and stopped together."""

    settings: AppSettings
    store: Store
    registry: WorkflowRegistry
    runtime: Runtime
    kv: KV
    services: Services
    metrics: Metrics
    telemetry: Telemetry
    started: bool = False

    @classmethod
    def from_settings(
        cls,
        settings: AppSettings,
        *,
        run_pools: Collection[str] | None = None,
        concurrency: Mapping[str, int] | None = None,
        services: Mapping[str, Any] | None = None,
        registry: WorkflowRegistry | None = None,
        codec: PayloadCodec | None = None,
    ) -> SluiceApp:
        """Load the workflows and wire store, services and runtime; nothing starts until
        :meth:`start`.

        ``services`` are wired by name beside the built ones (:func:`build_services`): a custom
        service is reached by steps as ``ctx.service(name)``, and a built-in name replaces
        that service (a test's own index or cache).
        """
        if registry is None:
            if settings.workflows_dir is None:
                raise ConfigError("no workflow directory configured")
            registry = WorkflowRegistry.from_directory(settings.workflows_dir, settings.pools)
        codec = codec or encryption_codec(settings)
        settings, secret_values = resolve_secrets(settings, codec)
        try:
            return cls._build(settings, registry, codec, run_pools, concurrency, services)
        except ConfigError as exc:
            # A resolved value that fails a section's checks must not be quoted by the error.
            if secret_values:
                exc.problems = [redact(p, secret_values) for p in exc.problems]
                exc.args = (redact(str(exc), secret_values),)
            raise

    @classmethod
    def _build(
        cls,
        settings: AppSettings,
        registry: WorkflowRegistry,
        codec: PayloadCodec | None,
        run_pools: Collection[str] | None,
        concurrency: Mapping[str, int] | None,
        services: Mapping[str, Any] | None,
    ) -> SluiceApp:
        store = build_store(settings, codec)
        kv = build_kv(settings.kv)
        metrics = Metrics()
        telemetry = Telemetry(
            parse_telemetry(
                settings.extra.get("telemetry"), os.environ, embedded=isinstance(store, SqliteStore)
            ),
            store,
        )
        wired = build_services(
            settings, registry, kv=kv, metrics=metrics, telemetry=telemetry, custom=services,
            store=store, codec=codec if isinstance(codec, AesGcmCodec) else None,
        )  # fmt: skip
        runtime = Runtime(
            store,
            registry,
            settings.pools,
            settings.runtime,
            services=wired,
            run_pools=run_pools,
            concurrency=concurrency,
            metrics=metrics,
            telemetry=telemetry,
        )
        metrics.watch(lambda: runtime_gauges(runtime.stats))
        metrics.watch(lambda: cache_gauges(wired.caches()))
        return cls(settings, store, registry, runtime, kv, wired, metrics, telemetry)

    async def start(self) -> None:
        """Open the store and the KV, warm the services up, then start the pools."""
        await self.store.open()
        self.telemetry.start()
        try:
            await self.kv.open()
            await self.services.start()
            await self.runtime.start()
        except BaseException:
            await self.services.aclose()
            await self.kv.aclose()
            await self.telemetry.stop()
            await self.store.aclose()
            raise
        self.started = True

    async def stop(self) -> None:
        """Stop the pools, then close services, the KV and the store."""
        if self.started:
            self.started = False
            await self.runtime.stop()
            await self.services.aclose()
            await self.kv.aclose()
            # Spans and ledger rows of the last steps go to the store before it closes.
            await self.telemetry.stop()
            await self.store.aclose()

    async def __aenter__(self) -> SluiceApp:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
