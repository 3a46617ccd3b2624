"""``sluice mock serve SPEC``: a partner API mocked from its OpenAPI document or JSON Schema.

The mock answers each operation with its example (else generated data that validates), checks
every request against the spec (400/422 naming what is wrong) and can add latency, errors and
429s; ``GET /__mock/requests`` shows what it received. See :mod:`sluice.contracts.mock`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sluice.cli.common import fail

mock_app = typer.Typer(
    help="Serve mocks of partner APIs generated from their specs.", no_args_is_help=True
)


@mock_app.command("serve")
def serve(
    spec: Annotated[Path, typer.Argument(help="OpenAPI 3 document or JSON Schema (YAML/JSON).")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8950,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    latency: Annotated[float, typer.Option(help="Milliseconds before each answer.")] = 0.0,
    error_rate: Annotated[float, typer.Option(help="Share of valid requests answered 500.")] = 0.0,
    rate_limit: Annotated[
        int, typer.Option(help="Requests a second past which the answer is 429; 0: no limit.")
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the injected errors.")] = 0,
) -> None:
    """Serve the mock until interrupted; every request is checked against the spec."""
    import uvicorn

    from sluice.contracts.mock import Mock, MockOptions
    from sluice.errors import SluiceError

    try:
        from sluice.contracts.spec import load_spec

        options = MockOptions(
            latency_ms=latency, error_rate=error_rate, rate_limit=rate_limit, seed=seed
        )
        mock = Mock(load_spec(spec), options)
    except SluiceError as exc:
        raise fail(exc) from None
    operations = ", ".join(
        f"{op.method} {mock.spec.base_path}{op.path}" for op in mock.spec.operations
    )
    typer.echo(f"mock of {spec} on http://{host}:{port}: {operations}", err=True)
    typer.echo(f"requests received: http://{host}:{port}/__mock/requests", err=True)
    uvicorn.run(mock.app, host=host, port=port, log_level="warning", access_log=False)


def register(app: typer.Typer) -> None:
    """Add ``sluice mock``."""
    app.add_typer(mock_app, name="mock")
