"""Redis going away and coming back: fail fast with a clear error, fall back, recover."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from sluice.config import parse_settings
from sluice.errors import ConfigError, SluiceError
from sluice.kv.base import KVUnavailableError
from sluice.kv.fallback import FallbackKV
from sluice.kv.memory import MemoryKV
from sluice.kv.redis import RedisKV
from sluice.kv.settings import build_kv, kv_url
from sluice.testing import free_port
from tests.kv.conftest import REDIS_URL, TcpProxy, new_prefix


class TestFailFast:
    async def test_a_closed_port_fails_fast_with_a_sluice_error(self) -> None:
        """Every operation raises KVUnavailableError quickly, and at once during the cooldown."""
        kv = RedisKV(f"redis://127.0.0.1:{free_port()}/0", cooldown_s=5)
        try:
            with pytest.raises(KVUnavailableError, match="unavailable") as info:
                await kv.take("t", rate=1, burst=1)
            assert isinstance(info.value, SluiceError)
            assert info.value.__cause__ is not None  # a connection was tried and refused
            for call in (kv.get("k"), kv.set("k", b"v"), kv.incr("n"), kv.set_if_absent("k", b"")):
                with pytest.raises(KVUnavailableError) as info:
                    await call
                assert 0 < info.value.retry_after <= 5
                assert info.value.__cause__ is None  # during the cooldown: no attempt at all
        finally:
            await kv.aclose()

    async def test_it_recovers_when_redis_returns(self, redis_proxy: TcpProxy) -> None:
        """After an outage, calls reach Redis again once the cooldown has passed."""
        kv = RedisKV(f"redis://127.0.0.1:{redis_proxy.port}/0", prefix=new_prefix(), cooldown_s=0.1)
        try:
            await kv.set("k", b"v", ttl_s=30)
            await redis_proxy.stop()
            with pytest.raises(KVUnavailableError):
                await kv.get("k")
            await redis_proxy.start()
            await asyncio.sleep(0.15)
            assert await kv.get("k") == b"v"
        finally:
            await kv.delete_prefix()
            await kv.aclose()


class TestFallback:
    async def test_switches_to_local_state_and_back_saying_so(
        self, redis_proxy: TcpProxy, caplog: pytest.LogCaptureFixture
    ) -> None:
        """While Redis is down calls use local state; each switch is logged."""
        caplog.set_level(logging.INFO, logger="sluice.kv")
        redis_kv = RedisKV(
            f"redis://127.0.0.1:{redis_proxy.port}/0", prefix=new_prefix(), cooldown_s=0.1
        )
        kv = FallbackKV(redis_kv)
        try:
            await kv.open()
            assert "kv: using redis" in caplog.text
            assert await kv.incr("n") == 1
            await redis_proxy.stop()
            assert await kv.incr("n") == 1  # a fresh, local counter
            assert kv.using_primary is False
            assert "using in-process state" in caplog.text
            await redis_proxy.start()
            await asyncio.sleep(0.15)
            assert await kv.incr("n") == 2  # the shared counter again
            assert kv.using_primary is True
            assert "is back" in caplog.text
            assert kv.switches == 2
        finally:
            await redis_kv.delete_prefix()
            await kv.aclose()

    async def test_redis_down_at_start_is_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        """Opening with Redis away works, on local state, with a warning."""
        kv = FallbackKV(RedisKV(f"redis://127.0.0.1:{free_port()}/0"))
        async with kv:
            assert (await kv.take("t", rate=1, burst=2)).allowed
        assert "unavailable" in caplog.text


class TestSettings:
    def test_url_comes_from_the_environment_or_settings(self, tmp_path: Path) -> None:
        """SLUICE_KV wins over ``kv:``; the default is in-process."""
        settings = parse_settings({"kv": "redis://h:1/0"}, tmp_path, environ={})
        assert kv_url(settings) == "redis://h:1/0"
        overridden = parse_settings({"kv": "redis://h:1/0"}, tmp_path, {"SLUICE_KV": "memory://"})
        assert kv_url(overridden) == "memory://"
        assert kv_url(parse_settings({}, tmp_path, environ={})) == "memory://"

    async def test_build_kv(self) -> None:
        """Redis URLs give a fallback KV unless turned off; unknown schemes are refused."""
        assert isinstance(build_kv("memory://"), MemoryKV)
        fallback = build_kv(f"{REDIS_URL}?prefix=x:")
        assert isinstance(fallback, FallbackKV)
        strict = build_kv(f"{REDIS_URL}?fallback=0")
        assert isinstance(strict, RedisKV)
        await fallback.aclose()
        await strict.aclose()
        with pytest.raises(ConfigError):
            build_kv("memcached://h")

    def test_timeouts_come_from_the_url(self) -> None:
        """``connect_timeout_ms`` and ``timeout_ms`` set the client's bounds; a bad one is named."""
        kv = build_kv(f"{REDIS_URL}?fallback=0&connect_timeout_ms=1500&timeout_ms=2000")
        assert isinstance(kv, RedisKV)
        assert (kv.connect_timeout_s, kv.timeout_s) == (1.5, 2.0)
        default = build_kv(f"{REDIS_URL}?fallback=0")
        assert isinstance(default, RedisKV)
        assert (default.connect_timeout_s, default.timeout_s) == (0.25, 0.5)
        for bad in ("timeout_ms=0", "timeout_ms=soon", "connect_timeout_ms=99999"):
            with pytest.raises(ConfigError, match=bad.split("=")[0]):
                build_kv(f"{REDIS_URL}?{bad}")

    async def test_memory_is_bounded(self) -> None:
        """The in-process KV keeps at most ``max_keys``, dropping the least recently used."""
        kv = MemoryKV(max_keys=3)
        for key in "abcd":
            await kv.set(key, b"1")
        assert len(kv) == 3
        assert await kv.get("a") is None
