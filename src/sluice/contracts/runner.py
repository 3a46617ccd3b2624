"""Every contract check of an app, in one call: inbound, consumer, then Sluice's own API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sluice.contracts.consumer import check_partner
from sluice.contracts.inbound import check_inbound
from sluice.contracts.manifest import load_contracts
from sluice.contracts.own_api import check_own_api
from sluice.contracts.results import CheckResult


@dataclass(frozen=True, slots=True)
class ContractOptions:
    """How much each check sends: generated payloads per source, events per webhook
    partner, schemathesis examples per operation of the own API (0: that check is off)."""

    examples: int = 30
    events: int = 5
    api_examples: int = 10


async def run_contracts(
    app_dir: Path,
    options: ContractOptions | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> list[CheckResult]:
    """The results of every contract check of the app in ``app_dir``, in a fixed order."""
    options = options or ContractOptions()
    contracts = load_contracts(app_dir)
    results = await check_inbound(
        app_dir, contracts.sources, examples=options.examples, environ=environ
    )
    for partner in contracts.partners:
        results.append(
            await check_partner(app_dir, partner, events=options.events, environ=environ)
        )
    if options.api_examples:
        results.append(await check_own_api(app_dir, examples=options.api_examples, environ=environ))
    return results
