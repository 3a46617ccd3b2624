"""Prometheus metrics of the AI gateway, registered on the app's own registry.

Labels are the configured model groups and deployments and a fixed set of outcomes, so the
series are bounded by the config; spend per tenant lives in the spend ledger, not in labels.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class GatewayMetrics:
    """Answers by outcome, tokens and cost by deployment."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "sluice_gateway_requests",
            "Chat completions by model group and outcome (answered, cache_hit, replay, failed,"
            " refused_upstream, stream_cut)",
            ["model", "outcome"],
            registry=registry,
        )
        self.tokens = Counter(
            "sluice_gateway_tokens", "Model tokens relayed", ["deployment", "kind"],
            registry=registry,
        )  # fmt: skip
        self.cost = Counter(
            "sluice_gateway_cost", "Cost of relayed calls (prices: currency)", ["deployment"],
            registry=registry,
        )  # fmt: skip

    def outcome(self, group: str, outcome: str) -> None:
        """Count one request of ``group`` that ended in ``outcome``."""
        self.requests.labels(group, outcome).inc()

    def answered(
        self, group: str, deployment: str, tokens_in: int, tokens_out: int, cost: float
    ) -> None:
        """Count one answer of ``deployment`` with its tokens and cost."""
        self.requests.labels(group, "answered").inc()
        if tokens_in:
            self.tokens.labels(deployment, "input").inc(tokens_in)
        if tokens_out:
            self.tokens.labels(deployment, "output").inc(tokens_out)
        if cost:
            self.cost.labels(deployment).inc(cost)
