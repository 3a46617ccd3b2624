"""Log lines inside a trace carry its id; structlog loggers share the masked JSON lines."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import orjson
from opentelemetry.sdk.trace import TracerProvider

from sluice.telemetry.logs import JsonFormatter


def _line(logger: logging.Logger, out: io.StringIO, msg: str, *args: object) -> dict[str, str]:
    logger.warning(msg, *args, extra={"event_id": "e1", "body": "never kept"})
    parsed: dict[str, str] = orjson.loads(out.getvalue().splitlines()[-1])
    return parsed


def test_lines_in_a_span_carry_its_trace_id() -> None:
    """A record written while a span is current names the span's trace; outside, none."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("sluice.test.trace")
    logger.addHandler(handler)
    logger.propagate = False
    tracer = TracerProvider().get_tracer("test")
    try:
        with tracer.start_as_current_span("step") as span:
            inside = _line(logger, out, "failed for %s", "jo@example.com")
        outside = _line(logger, out, "idle")
    finally:
        logger.removeHandler(handler)
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["msg"] == "failed for <EMAIL_1>"
    assert inside["event_id"] == "e1"
    assert "body" not in inside
    assert "trace_id" not in outside


def test_structlog_loggers_write_the_same_masked_lines() -> None:
    """structlog calls keep only context fields, mask the message, and add the trace id."""
    code = (
        "import structlog; from opentelemetry.sdk.trace import TracerProvider;"
        "from sluice.telemetry.logs import configure_logging; configure_logging('json');"
        "t = TracerProvider().get_tracer('x');\n"
        "with t.start_as_current_span('s'):\n"
        "    structlog.get_logger('sluice.s').warning('call +44 20 7946 0958', tenant='acme',"
        " prompt='secret words')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = orjson.loads(out.stderr.strip())
    assert line["msg"] == "call <PHONE_1>"
    assert line["tenant"] == "acme"
    assert line["logger"] == "sluice.s"
    assert len(line["trace_id"]) == 32
    assert "prompt" not in line
    assert "secret words" not in out.stderr
