"""The ``GET /v1/status`` document: the whole deployment for operators, a share for tenants.

An operator key (role ``operator``) reads everything: pools, caches, every breaker, SLO guards
with their windows and counters, the states other processes published, skipped escalations
and spike alerts. Any other key reads only what bears on its own calls and says nothing of
other tenants' traffic: whether each workflow's guard lets events in (state, policy, when to
retry), and the state of each shared downstream's breaker (models, providers, caches).
Outbound webhook breakers name other tenants' receivers, and window counts, queue depths,
cache hits and alerts add up everyone's traffic, so those stay operator-only.

Each guard also names its ``min_events``: below that many finished events in its window the
guard judges nothing (``judging: false``), so at low traffic it never acts.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

from sluice.ingress.apikeys import is_operator
from sluice.reliability.services import reliability_status
from sluice.reliability.slo_guard import SloSnapshot
from sluice.reliability.slo_guards import SloGuards
from sluice.store.base import ApiKeyRecord

if TYPE_CHECKING:  # the app passes its services; ingress does not build them
    from sluice.services import Services

#: Breakers whose names carry nothing tenant-specific (models, AI providers, caches).
_SHARED_BREAKERS = ("model:", "gateway:", "cache:")


def _guard_view(snap: SloSnapshot, guards: SloGuards) -> dict[str, Any]:
    view = {f.name: getattr(snap, f.name) for f in fields(snap)}
    guard = guards.get(snap.workflow)
    if guard is not None:
        view["min_events"] = guard.settings.min_events
        view["judging"] = snap.window.events >= guard.settings.min_events
    return view


async def status_document(key: ApiKeyRecord, services: Services, pools: Any) -> dict[str, Any]:
    """The status document ``key`` may read (see the module docstring)."""
    breakers = services.core.breakers
    snapshot = [] if breakers is None else breakers.snapshot()
    reliability = await reliability_status(services.reliability)
    guards = services.reliability.slo_guards
    guard_views = [
        _guard_view(s, guards) for s in reliability.get("slo_guards", []) if guards is not None
    ]
    if not is_operator(key):
        return {
            "scope": "tenant",
            "tenant": key.tenant,
            "slo_guards": [
                {k: g[k] for k in ("workflow", "state", "policy", "retry_after")}
                for g in guard_views
            ],
            "breakers": [
                {"name": b.name, "state": b.state, "retry_after": b.retry_after}
                for b in snapshot
                if b.name.startswith(_SHARED_BREAKERS)
            ],
        }
    caches = {name: cache.stats().as_dict() for name, cache in services.caches().items()}
    body: dict[str, Any] = {
        "scope": "operator",
        "pools": pools,
        "caches": caches,
        "breakers": snapshot,
        **reliability,
    }
    if "slo_guards" in reliability:
        body["slo_guards"] = guard_views
    alerts = services.core.alerts
    if alerts is not None:  # spike alerts firing, the last changes, webhook deliveries
        body["alerts"] = alerts.snapshot()
    return body
