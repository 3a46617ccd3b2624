"""Structured logs: JSON lines with context, PII masked in messages and tracebacks."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import orjson

from sluice.config import load_settings, own_addresses
from sluice.telemetry.logs import JsonFormatter, keep_unmasked


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("sluice.runtime", logging.WARNING, __file__, 1, msg, (), None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_context_and_mask_pii() -> None:
    """Context fields are kept, other attributes dropped, PII masked."""
    record = _record("step failed on 'mail jo@example.com, card 4111 1111 1111 1111'",
                     event_id="e1", tenant="acme", payload={"text": "secret"})  # fmt: skip
    line = orjson.loads(JsonFormatter().format(record))
    assert line["msg"] == "step failed on 'mail <EMAIL_1>, card <CARD_1>'"
    assert (line["event_id"], line["tenant"], line["level"]) == ("e1", "acme", "warning")
    assert "payload" not in line


def test_tracebacks_are_masked() -> None:
    """An exception quoting a ticket is masked in the traceback too."""
    try:
        raise ValueError("cannot parse 'call me on +44 20 7946 0958'")
    except ValueError:
        record = _record("boom")
        record.exc_info = sys.exc_info()
    line = orjson.loads(JsonFormatter().format(record))
    assert "7946" not in line["exc"]
    assert "<PHONE_1>" in line["exc"]


def test_sluice_run_logs_json_without_pii(tmp_path: object) -> None:
    """The command's own logs, in JSON, never carry the ticket's PII."""
    code = (
        "import logging; from sluice.telemetry.logs import configure_logging;"
        "configure_logging('json'); logging.getLogger('sluice.x').warning("
        "'dead: %s', 'jo@example.com', extra={'event_id': 'e9'})"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = orjson.loads(out.stderr.strip())
    assert line == {**line, "msg": "dead: <EMAIL_1>", "event_id": "e9", "logger": "sluice.x"}


def test_the_apps_own_addresses_stay_readable_while_payload_addresses_are_masked(
    tmp_path: Path,
) -> None:
    """The store's, the KV's and the model endpoints' hosts are configuration, not PII."""
    app = tmp_path / "app"
    (app / "workflows").mkdir(parents=True)
    (app / "sluice.yaml").write_text(
        "store: postgresql://postgres@10.1.2.3:5432/test\n"
        "kv: redis://10.1.2.4:6379/0\n"
        "models: {remote: {kind: openai, base_url: 'http://10.1.2.5:8900/v1', labels: [a]}}\n"
    )
    keep = own_addresses(load_settings(app))
    assert {"10.1.2.3:5432", "10.1.2.4:6379", "10.1.2.5:8900", "10.1.2.4"} <= set(keep)
    try:
        keep_unmasked(keep)
        record = _record("redis at 10.1.2.4:6379/0 is away; ticket from 10.9.9.9 mail jo@x.io")
        line = orjson.loads(JsonFormatter().format(record))
        assert (
            line["msg"]
            == "redis at 10.1.2.4:6379/0 is away; ticket from <IP_ADDRESS_1> mail <EMAIL_1>"
        )
    finally:
        keep_unmasked(())
    masked = orjson.loads(JsonFormatter().format(_record("redis at 10.1.2.4:6379 is away")))
    assert "10.1.2.4" not in masked["msg"]  # without the setting, as before: masked
