"""OTLP/HTTP export to a real collector endpoint, beside the local span store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.app import SluiceApp
from sluice.config import load_settings
from sluice.errors import ConfigError
from sluice.telemetry.settings import parse_telemetry
from sluice.testing.servers import AsgiServer
from tests.conftest import MakeApp

WORKFLOW = """
name: pair
input_schema: {type: object}
steps:
  - {name: first, pool: work, uses: noop}
  - {name: second, pool: work, uses: noop}
"""


@pytest.fixture
async def collector() -> AsyncIterator[tuple[int, list[ExportTraceServiceRequest]]]:
    """A real HTTP server decoding OTLP trace exports."""
    received: list[ExportTraceServiceRequest] = []

    async def traces(request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        received.append(message)
        return Response(status_code=200, media_type="application/x-protobuf")

    app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
    async with AsgiServer(app) as server:
        yield server.port, received


async def test_spans_reach_the_collector_and_the_store(
    make_app: MakeApp, collector: tuple[int, list[ExportTraceServiceRequest]]
) -> None:
    """Every span of the event is exported over OTLP/HTTP with the service name and kept."""
    port, received = collector
    config = f"""
    store: sqlite:///.sluice/otlp.db
    pools: {{work: {{concurrency: 2}}}}
    telemetry: {{otlp_endpoint: "http://127.0.0.1:{port}", service_name: triage-eu,
                 flush_ms: 20}}
    """
    app_dir = make_app(config, {"pair.yaml": WORKFLOW})
    async with SluiceApp.from_settings(load_settings(app_dir)) as app:
        with app.telemetry.span("accept pair"):
            event_id = await app.runtime.submit("pair", {})
        await app.runtime.wait(event_id, 10)
        trace_id = await app.store.event_trace_id(event_id)
    exported = [
        (span.name, span.trace_id.hex(), _service(resource.resource.attributes))
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert sorted(exported) == [
        ("accept pair", trace_id, "triage-eu"),
        ("step first", trace_id, "triage-eu"),
        ("step second", trace_id, "triage-eu"),
    ]


def _service(attributes: Iterable[Any]) -> str:
    for attribute in attributes:
        if attribute.key == "service.name":
            return str(attribute.value.string_value)
    return ""


def test_bad_telemetry_settings_are_listed_at_once() -> None:
    """Every problem in the section is reported together, with its key."""
    with pytest.raises(ConfigError) as caught:
        parse_telemetry(
            {"sample_ratio": 2, "otlp_endpoint": "collector:4318", "max_spans": 0, "colour": 1},
            {},
        )
    assert caught.value.problems == [
        "telemetry.colour: unknown setting",
        "telemetry.max_spans: must be a positive integer, got 0",
        "telemetry.sample_ratio: must be within 0..1, got 2",
        "telemetry.otlp_endpoint: must be an http(s) URL, got 'collector:4318'",
    ]
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318/", "OTEL_SERVICE_NAME": "svc"}
    settings = parse_telemetry(None, env, embedded=False)
    assert (settings.otlp_endpoint, settings.service_name, settings.sample_ratio) == (
        "http://otel:4318", "svc", 0.1
    )  # fmt: skip
