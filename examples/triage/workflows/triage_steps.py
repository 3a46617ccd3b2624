"""Steps of the triage workflow that belong to this app rather than to Sluice."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluice.workflow import JSONObject, StepContext

#: The knowledge base: one reply per intent (the draft step's ``kb_reply`` input reads it too).
KNOWLEDGE_BASE = "kb/templates.yaml"
#: Below this classifier confidence a local draft goes to an agent first.
_CONFIDENT = 0.5


def local_draft(ctx: StepContext, data: JSONObject, values: Mapping[str, Any]) -> dict[str, Any]:
    """The draft step's fallback (``options.fallback``): the knowledge-base reply as it is,
    in the template's output shape, when no model writes the draft (none in the ``drafter``
    group, a degrade budget, a failing provider).

    A draft is sent as it is only when the intent has a knowledge-base reply, the classifier
    was confident and a retrieved ticket resolved under the same intent confirms it; otherwise
    it needs an agent's review, and ``reason`` says why.
    """
    intent = data.get("intent")
    known = isinstance(intent, str) and intent in ctx.service("files").yaml(KNOWLEDGE_BASE)
    neighbours = data.get("neighbours") or []
    agreeing = [n for n in neighbours if isinstance(n, dict) and n.get("intent") == intent]
    reasons = [
        why
        for why, holds in (
            ("no knowledge-base reply for the intent", not known),
            ("no similar resolved ticket has the intent", not agreeing),
            ("the intent is uncertain", not data.get("confidence", 0) >= _CONFIDENT),
        )
        if holds
    ]
    return {"reply": str(values["kb_reply"]), "needs_review": bool(reasons),
            "reason": "; ".join(reasons)}  # fmt: skip
