"""The OpenAI-compatible AI gateway: chat completions relayed through Sluice's machinery.

``gateway:`` in ``sluice.yaml`` (:mod:`sluice.ai_gateway.config`) names model groups of provider
deployments; ``sluice serve`` then answers ``POST /v1/chat/completions`` and ``GET /v1/models``
(:mod:`sluice.ai_gateway.routes`) with API keys, rate limits, idempotency keys, a response cache,
circuit breakers with fallback, spend budgets and an SLO guard (:mod:`sluice.ai_gateway.proxy`).
Its provider connections are :mod:`sluice.outbound.upstream`. (``sluice.gateway``, the old
name, is a deprecated alias.)
"""
