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
        try:
            module = importlib.import_module(f"sluice.cli.{name}")
        except ModuleNotFoundError as exc:
            # A group whose packages are an optional extra (the testing toolkit's generators,
            # PostgreSQL for environments): the core install still runs every other command,
            # and this one says what to install.
            missing = (exc.name or "").partition(".")[0]
            if not missing or missing == "sluice" or name not in _OPTIONAL_GROUPS:
                raise
            _register_missing(app, name, missing)
            continue
        module.register(app)
    return app


# Command modules that need an extra: module -> (the command it adds, the extra).
_OPTIONAL_GROUPS: dict[str, tuple[str, str]] = {
    "test_cmd": ("test", "testing"),
    "env": ("env", "testing"),
    "fixtures": ("fixtures", "testing"),
    "mock": ("mock", "testing"),
    "contract": ("contract", "testing"),
    "ci": ("ci", "testing"),
}


def _register_missing(app: typer.Typer, module: str, package: str) -> None:
    """A stand-in for a command whose packages are not installed: it names the extra."""
    command, extra = _OPTIONAL_GROUPS[module]

    def missing(ctx: typer.Context) -> None:
        typer.echo(
            f"error: sluice {command} needs the {package!r} package, which is not installed:"
            f" pip install 'sluicegate[{extra}]'",
            err=True,
        )
        raise typer.Exit(2)

    settings = {"allow_extra_args": True, "ignore_unknown_options": True}
    app.command(
        command, context_settings=settings, help=f"(needs: pip install 'sluicegate[{extra}]')"
    )(missing)


# The extra that brings each optional package (pyproject.toml's optional dependencies).
_EXTRA_OF = {
    "hypothesis": "testing", "hypothesis_jsonschema": "testing", "schemathesis": "testing",
    "bandit": "testing", "detect_secrets": "testing", "asyncpg": "postgres", "redis": "redis",
    "torch": "models", "sentence_transformers": "models", "wordllama": "models",
    "numpy": "models", "sklearn": "models",
}  # fmt: skip


def main() -> None:
    """Run the ``sluice`` command."""
    try:
        build_app()()
    except ModuleNotFoundError as exc:
        # A command reached a package of an optional extra that is not installed: say which,
        # instead of a traceback.
        missing = (exc.name or "").partition(".")[0]
        if not missing or missing == "sluice":
            raise
        extra = _EXTRA_OF.get(missing, "all")
        typer.echo(
            f"error: this command needs the {missing!r} package, which is not installed:"
            f" pip install 'sluicegate[{extra}]'",
            err=True,
        )
        raise SystemExit(2) from None
