"""Entry point of the ``sluice`` command.

Each command group lives in its own module under ``sluice.cli`` and exposes
``register(app)``; this module only wires them together, so importing one group never pays
for the others' dependencies.
"""

from __future__ import annotations

import importlib

import typer

# Modules under sluice.cli that contribute commands, in help order.
_COMMAND_MODULES = (
    "init",
    "runtime",
    "apikeys",
    "quarantine",
    "principals",
    "audit",
    "encryption",
    "secrets",
    "templates",
    "routing",
    "simulate",
    "pii",
    "models",
    "db",
    "index",
    "evaluate",
    "chaos",
    "top",
    "trace",
    "costs",
    "releases",
    "config_check",
    "egress",
    "test_cmd",
    "env",
    "fixtures",
    "mock",
    "contract",
    "ci",
)


def build_app() -> typer.Typer:
    """Build the typer application with every command group registered."""
    app = typer.Typer(
        name="sluice",
        help="Sluice: run AI workflows in production, predictably.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"sluice.cli.{name}")
        module.register(app)
    return app


def main() -> None:
    """Run the ``sluice`` command."""
    build_app()()
