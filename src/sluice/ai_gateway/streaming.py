"""Server-sent events of chat completions: relayed event by event, assembled, and replayed.

A streamed answer is passed on one event at a time as it arrives from the provider. On the
way through, :class:`~sluice.models.sse.StreamAssembler` (shared with the model client) joins
the deltas into the complete completion, so a streamed answer can be cached, kept for
idempotent replays and charged (the gateway asks the provider for the usage chunk; the caller
sees it only if it asked too). A cached or replayed
answer is sent back as events by :func:`completion_events`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from sluice.models.sse import EMPTY_USAGE

DONE = b"data: [DONE]"


def completion_events(completion: dict[str, Any], *, include_usage: bool) -> Iterator[bytes]:
    """A complete answer as the events a stream of it would have been."""
    head = {k: completion.get(k) for k in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"
    for choice in completion.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        delta = {"role": message.get("role", "assistant"), "content": message.get("content", "")}
        chunks = (
            [{"index": index, "delta": delta, "finish_reason": None}],
            [{"index": index, "delta": {}, "finish_reason": choice.get("finish_reason", "stop")}],
        )
        for choices in chunks:
            yield b"data: " + orjson.dumps({**head, "choices": choices}) + b"\n\n"
    if include_usage:
        usage = completion.get("usage") or EMPTY_USAGE
        yield b"data: " + orjson.dumps({**head, "choices": [], "usage": usage}) + b"\n\n"
    yield DONE + b"\n\n"
