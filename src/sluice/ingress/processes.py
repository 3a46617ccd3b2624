"""Several serving processes on one port: ``sluice serve --processes N``.

One Python process accepts on one core (the GIL); a machine with more cores runs more
processes. Each child binds its own listening socket to the same address with
``SO_REUSEPORT``, so the kernel spreads new connections across them, and each runs its own app
(store connections, KV, caches, metrics) exactly as a lone ``serve`` would; they share what
the store and the KV share. The parent only supervises: it starts the children, replaces one
that dies, and on SIGTERM or SIGINT passes SIGTERM on and waits for them to drain.

Children run in their own process group, so a Ctrl-C at a terminal reaches the parent alone
and each child sees one SIGTERM (a second signal would make uvicorn skip its graceful drain).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("sluice.server")
# A child that dies sooner than this after its start is restarted only after the same delay,
# so a child that cannot start (a port held by another program, a broken store) does not spin.
_MIN_LIFE_S = 1.0


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, ready for uvicorn's
    ``Server.run(sockets=[...])`` (which listens on it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class Supervisor:
    """Forks ``processes`` children that each call ``serve_one`` (which returns an exit code),
    keeps that many alive until told to stop, and returns the first failing exit code (0 when
    every child stopped cleanly)."""

    def __init__(self, processes: int, serve_one: Callable[[], int]) -> None:
        if processes < 1:
            raise ValueError("processes: at least 1")
        self.processes = processes
        self._serve_one = serve_one
        self._children: dict[int, float] = {}  # pid -> when it started
        self._stopping = False

    def run(self) -> int:
        """Supervise until SIGTERM or SIGINT, then stop the children and wait for them."""
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        # SIGHUP reloads the configuration: every serving process reloads its own.
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._forward)
        code = 0
        try:
            for _ in range(self.processes):
                self._fork()
            while self._children:
                try:
                    pid, status = os.wait()
                except ChildProcessError:
                    break
                started = self._children.pop(pid, None)
                if started is None:
                    continue
                exit_code = os.waitstatus_to_exitcode(status)
                if self._stopping:
                    if exit_code not in (0, -signal.SIGTERM):
                        code = code or 1
                    continue
                log.warning("serving process %d exited with %d; starting another", pid, exit_code)
                wait = _MIN_LIFE_S - (time.monotonic() - started)
                if wait > 0:
                    time.sleep(wait)
                if not self._stopping:
                    self._fork()
        finally:
            self._stop(signal.SIGTERM, None)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code

    def _fork(self) -> None:
        pid = os.fork()
        if pid == 0:  # the child: serve, then leave without running the parent's cleanup
            code = 1
            try:
                os.setpgid(0, 0)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)  # uvicorn and the app install their own
                code = self._serve_one()
            except BaseException:
                log.exception("serving process failed")
            finally:
                os._exit(code)
        self._children[pid] = time.monotonic()

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):  # it has just exited
                os.kill(pid, signum)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):  # it has just exited
                os.kill(pid, signal.SIGTERM)


__all__ = ["Supervisor", "reuse_port_socket"]
