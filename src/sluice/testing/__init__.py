"""Helpers for tests, benchmarks and drills that run Sluice for real (servers, ports)."""

from sluice.testing.servers import free_port, wait_ready
from sluice.testing.waiting import wait_until

__all__ = ["free_port", "wait_ready", "wait_until"]
