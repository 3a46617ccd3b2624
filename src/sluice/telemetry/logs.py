"""Structured logs: one JSON object per line, PII masked in every message.

Log calls pass context as ``extra`` (``event_id``, ``step``, ``tenant``, ``workflow``,
``correlation_id``); the formatter keeps those fields and nothing else from the record, so a
stray attribute cannot leak a payload. Messages and tracebacks go through the PII masker
before they are written: a step's exception text may quote the ticket it failed on.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from sluice.guard.pii import PiiMasker

CONTEXT_FIELDS = ("event_id", "step", "tenant", "workflow", "correlation_id", "pool")


class JsonFormatter(logging.Formatter):
    """Formats records as JSON lines with masked text."""

    def __init__(self, masker: PiiMasker | None = None) -> None:
        super().__init__()
        self._masker = masker or PiiMasker()

    def _mask(self, text: str) -> str:
        return self._masker.mask(text).masked

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object: time, level, logger, masked message, context, masked traceback."""
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self._mask(record.getMessage()),
        }
        for field in CONTEXT_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                entry[field] = str(value)
        if record.exc_info:
            entry["exc"] = self._mask(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Send the process's logs to stderr as ``text`` (for people) or ``json`` (for machines).

    Both mask PII in messages; text is for a terminal, JSON for a log pipeline.
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_MaskedText())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class _MaskedText(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._masker = PiiMasker()

    def format(self, record: logging.LogRecord) -> str:
        return self._masker.mask(super().format(record)).masked
