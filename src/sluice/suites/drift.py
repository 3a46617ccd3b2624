"""How far apart two label distributions are: the Jensen-Shannon distance."""

from __future__ import annotations

import math
from collections.abc import Mapping


def js_distance(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """The Jensen-Shannon distance (base 2, so within 0..1) between two distributions given
    as label -> share; labels missing from one side have share 0 there. Shares are
    normalised first, so counts work too. 0 means equal, 1 means disjoint."""
    labels = set(p) | set(q)
    p_total = sum(p.values())
    q_total = sum(q.values())
    if p_total <= 0 or q_total <= 0:
        raise ValueError("a distribution with no mass")
    divergence = 0.0
    for label in labels:
        a = p.get(label, 0.0) / p_total
        b = q.get(label, 0.0) / q_total
        m = (a + b) / 2
        if a > 0:
            divergence += a * math.log2(a / m) / 2
        if b > 0:
            divergence += b * math.log2(b / m) / 2
    return math.sqrt(max(divergence, 0.0))
