"""Structured logs: one JSON object per line (structlog), PII masked, the trace id on each.

Log calls pass context as ``extra`` on the standard library loggers (``event_id``, ``step``,
``tenant``, ``workflow``, ``correlation_id``, ``pool``) or as keyword arguments on structlog
loggers; the formatter keeps those fields and nothing else, so a stray attribute cannot leak
a payload. Every line written inside a trace (a request, a step) carries its ``trace_id``,
the id the API returns as the correlation id. Messages and tracebacks go through the PII
masker before they are written: a step's exception text may quote the ticket it failed on.
Prompts are never logged unless the app opts in (``telemetry: {log_prompts: true}``), and
then masked like everything else.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, MutableMapping
from typing import Any

import orjson
import structlog
from opentelemetry import trace

from sluice.guard.pii import PiiMasker

CONTEXT_FIELDS = ("event_id", "step", "tenant", "workflow", "correlation_id", "pool")
# Keys the structlog pipeline itself puts in an event dict; never copied into a line.
_INTERNAL = {"_record", "_from_structlog", "event", "exc_info", "level", "logger", "timestamp"}


# Strings of the operator's own configuration (the store's and the KV's addresses, model
# endpoints) that log lines keep as they are: they are not payload data, and an operator
# debugging "redis at <IP_ADDRESS_1> is away" cannot act on it. Set by keep_unmasked.
_KEEP: tuple[str, ...] = ()
_HOLD = "\x00{}\x00"  # what a kept string stands as while the masker runs: matches nothing


def keep_unmasked(values: Iterable[str]) -> None:
    """Let log lines show these strings of the app's own configuration unmasked (longest
    first, so that ``host:port`` wins over ``host``); everything else is masked as before."""
    global _KEEP  # noqa: PLW0603 - one process-wide setting, read by every formatter
    _KEEP = tuple(sorted({v for v in values if v}, key=len, reverse=True))


def mask_line(masker: PiiMasker, text: str) -> str:
    """``text`` with PII masked, except the strings :func:`keep_unmasked` named."""
    kept = [value for value in _KEEP if value in text]
    for index, value in enumerate(kept):
        text = text.replace(value, _HOLD.format(index))
    text = masker.mask(text).masked
    for index, value in enumerate(kept):
        text = text.replace(_HOLD.format(index), value)
    return text


def _trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def _dumps(entry: Any, **_: Any) -> str:
    return orjson.dumps(entry).decode()


class JsonFormatter(structlog.stdlib.ProcessorFormatter):
    """Formats standard-library and structlog records as JSON lines with masked text."""

    def __init__(self, masker: PiiMasker | None = None) -> None:
        self._masker = masker or PiiMasker()
        super().__init__(
            processors=[self._entry, structlog.processors.JSONRenderer(serializer=_dumps)],
            foreign_pre_chain=[],
        )

    def _mask(self, text: str) -> str:
        return mask_line(self._masker, text)

    def _entry(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """One line: time, level, logger, masked message, context, trace id, masked traceback."""
        record: logging.LogRecord = event_dict["_record"]
        # structlog has already rendered a standard record's message with its arguments.
        message = event_dict.get("event")
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self._mask(str(message) if message is not None else record.getMessage()),
        }
        for field in CONTEXT_FIELDS:
            value = event_dict.get(field, record.__dict__.get(field))
            if value is not None and field not in _INTERNAL:
                entry[field] = str(value)
        trace_id = _trace_id()
        if trace_id is not None:
            entry["trace_id"] = trace_id
        exc_info = record.exc_info
        if exc_info is None and event_dict.get("exc_info"):
            exc_info = sys.exc_info() if event_dict["exc_info"] is True else event_dict["exc_info"]
        if exc_info and exc_info[0] is not None:
            entry["exc"] = self._mask(self.formatException(exc_info))
        return entry


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Send the process's logs to stderr as ``text`` (for people) or ``json`` (for machines).

    Both mask PII in messages; text is for a terminal, JSON for a log pipeline. structlog
    loggers (``structlog.get_logger()``) go through the same handler and formatter.
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_MaskedText())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    structlog.configure(
        processors=[structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


class _MaskedText(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._masker = PiiMasker()

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        trace_id = _trace_id()
        if trace_id is not None:
            line = f"{line} trace_id={trace_id}"
        return mask_line(self._masker, line)
