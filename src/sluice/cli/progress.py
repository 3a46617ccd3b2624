"""Progress of long commands on standard error: ``LABEL done/total (rate/s, ETA 12s)``.

Standard output keeps the result alone (a table or one JSON document), so progress goes to
standard error, redrawn in place on a terminal and one line per update otherwise, at most a
few times a second. ``--quiet`` and ``--json`` silence it: a script reading JSON gets no
noise in its logs either.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Annotated, TextIO

import typer

QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on standard error.")]


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Count work done out of ``total`` and report it; silent when ``quiet``.

    Use as a context manager (the last line is finished on exit) and call :meth:`advance`
    per item, or pass the object where a ``progress(done, total)`` callback is expected.
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        unit: str = "items",
        quiet: bool = False,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = 0.25,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self._quiet = quiet
        self._stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._every_s = every_s
        self._started = clock()
        self._shown_at: float | None = None
        self._in_place = self._stream.isatty()
        self._open_line = False

    def line(self) -> str:
        """The current report: ``label done/total (rate unit/s, ETA ...)``."""
        elapsed = max(self._clock() - self._started, 1e-9)
        rate = self.done / elapsed
        text = f"{self.label} {self.done}/{self.total} ({rate:,.1f} {self.unit}/s"
        if self.done >= self.total:
            return f"{text}, {_duration(elapsed)})"
        eta = (self.total - self.done) / rate if rate > 0 else None
        return f"{text}, ETA {'?' if eta is None else _duration(eta)})"

    def advance(self, count: int = 1) -> None:
        """Record ``count`` more items done."""
        self.update(self.done + count)

    def update(self, done: int) -> None:
        """Record that ``done`` items of the total are done."""
        self.done = done
        now = self._clock()
        finished = done >= self.total
        if self._quiet or (
            not finished and self._shown_at is not None and now - self._shown_at < self._every_s
        ):
            return
        self._shown_at = now
        if self._in_place:
            self._stream.write(f"\r{self.line()}")
            self._open_line = True
            if finished:
                self._end_line()
        else:
            self._stream.write(f"{self.line()}\n")
        self._stream.flush()

    def note(self, text: str) -> None:
        """A message about the work (e.g. a training step), on its own line."""
        if self._quiet:
            return
        self._end_line()
        self._stream.write(f"{text}\n")
        self._stream.flush()

    def __call__(self, done: int, total: int) -> None:
        """The ``progress(done, total)`` callback form."""
        self.total = total
        self.update(done)

    def _end_line(self) -> None:
        if self._open_line:
            self._stream.write("\n")
            self._open_line = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._quiet:
            self._end_line()
            self._stream.flush()
