"""``sluice egress check URL --app DIR``: would the app be allowed to call this URL?

The answer comes from the policy the runtime builds from the app's ``outbound:`` section
(:func:`sluice.outbound.egress.app_policy`) and from :meth:`EgressPolicy.check`, the steps the
runtime's sessions run before each connection: the URL's form, the allowlist (the tenant's
too, with ``--tenant``), then the name resolved once and every address checked. A URL on a
configured model or AI gateway endpoint is checked as that endpoint's client checks it.
Exit code 0: allowed; 1: denied; 2: the app's configuration is unusable.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from sluice.cli.common import AppDir, JsonFlag, fail, print_json
from sluice.config import load_settings
from sluice.errors import SluiceError
from sluice.outbound.egress import app_policy, configured_endpoints
from sluice.outbound.policy import Decision, EgressDeniedError, EgressPolicy


def check(
    url: Annotated[
        str, typer.Argument(help="The URL to check, as a step or client would call it.")
    ],
    app_dir: AppDir,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Check with this tenant's allowlist too.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Say whether the app's egress policy allows ``URL``, and why."""
    try:
        settings = load_settings(app_dir)
        policy = app_policy(settings)
        endpoints = configured_endpoints(settings)
    except SluiceError as exc:
        raise fail(exc) from None
    decision, via = asyncio.run(_decide(policy, endpoints, url, tenant))
    if json_output:
        print_json({**decision.as_dict(), "checked_as": via})
    else:
        verdict = "allowed" if decision.allowed else "denied"
        typer.echo(f"{verdict}: {decision.reason} ({via})")
    raise typer.Exit(0 if decision.allowed else 1)


async def _decide(
    policy: EgressPolicy, endpoints: dict[str, str], url: str, tenant: str | None
) -> tuple[Decision, str]:
    try:
        target = policy.admit(url, check_allowlist=False)
    except EgressDeniedError:
        return await policy.check(url, tenant), "outbound policy"
    endpoint = endpoints.get(f"{target.host}:{target.port}")
    if endpoint is not None:
        return await policy.only(url).check(url), f"client of {endpoint}"
    return await policy.check(url, tenant), "outbound policy"


def register(app: typer.Typer) -> None:
    """Add the ``egress`` command group to ``app``."""
    egress_app = typer.Typer(
        name="egress", help="The egress policy of outbound calls.", no_args_is_help=True
    )
    egress_app.command("check")(check)
    app.add_typer(egress_app, name="egress")
