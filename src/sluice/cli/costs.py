"""``sluice costs --by tenant|workflow|model|step --since 24h``: what model calls cost.

Reads the cost ledger (one row per model call, cache hits included at zero cost) from the
app's store and prints, per group, the calls, how many the cache answered, tokens, the total
cost and the cost per call, costliest first.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from sluice.app import SluiceApp
from sluice.cli.common import AppDir, JsonFlag, fail, print_json, with_store
from sluice.errors import ConfigError
from sluice.models.prices import money
from sluice.store.base import COST_GROUPS, CostTotal

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_since(text: str, now: float) -> float:
    """Epoch seconds from ``30m``/``24h``/``7d`` (ago) or an ISO 8601 time (UTC if naive)."""
    match = _AGO.match(text.strip())
    if match is not None:
        return now - float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: give a duration (30m, 24h, 7d) or an ISO time"
            " (2026-11-27T09:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def register(app: typer.Typer) -> None:
    """Add the ``costs`` command."""
    app.command("costs")(costs)


def _row(total: CostTotal) -> dict[str, object]:
    return {
        "key": total.key, "calls": total.calls, "cached": total.cached,
        "input_tokens": total.input_tokens, "output_tokens": total.output_tokens,
        "cost": money(total.cost),
        "cost_per_call": money(total.cost / total.calls if total.calls else 0.0),
    }  # fmt: skip


def costs(
    by: Annotated[str, typer.Option("--by", help="Group by " + ", ".join(COST_GROUPS) + ".")] = (
        "model"
    ),
    since: Annotated[str, typer.Option(help="30m, 24h, 7d or an ISO time.")] = "24h",
    app_dir: AppDir = Path(),
    as_json: JsonFlag = False,
) -> None:
    """Model-call cost from the ledger, grouped, since a time."""
    if by not in COST_GROUPS:
        raise fail(ConfigError(f"--by must be one of {', '.join(COST_GROUPS)}; got {by!r}"))
    try:
        start = parse_since(since, time.time())
    except ConfigError as exc:
        raise fail(exc) from None

    async def go(app: SluiceApp) -> list[CostTotal]:
        return await app.store.cost_totals(by, start)

    totals = with_store(app_dir, go)
    rows = [_row(t) for t in totals]
    calls = sum(t.calls for t in totals)
    spent = sum(t.cost for t in totals)
    overall = {"calls": calls, "cached": sum(t.cached for t in totals), "cost": money(spent),
               "cost_per_call": money(spent / calls if calls else 0.0)}  # fmt: skip
    since_iso = datetime.fromtimestamp(start, UTC).isoformat(timespec="seconds")
    if as_json:
        print_json({"by": by, "since": since_iso, "groups": rows, "total": overall})
        return
    typer.echo(f"model-call cost by {by} since {since_iso}")
    width = max([len(by), *(len(t.key) for t in totals)])
    typer.echo(f"{by:<{width}}  {'calls':>8}  {'cached':>8}  {'tokens in':>10}  {'tokens out':>10}"
               f"  {'cost':>12}  {'per call':>12}")  # fmt: skip
    for r in rows:
        typer.echo(
            f"{r['key']:<{width}}  {r['calls']:>8}  {r['cached']:>8}  {r['input_tokens']:>10}"
            f"  {r['output_tokens']:>10}  {r['cost']:>12.6f}  {r['cost_per_call']:>12.8f}"
        )
    typer.echo(f"{'total':<{width}}  {calls:>8}  {overall['cached']:>8}  {'':>10}  {'':>10}"
               f"  {spent:>12.6f}  {overall['cost_per_call']:>12.8f}")  # fmt: skip
