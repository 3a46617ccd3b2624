"""Server-sent events: split across reads, joined into a completion, replayed as events."""

from __future__ import annotations

import orjson
import pytest

from sluice.ai_gateway.streaming import completion_events
from sluice.models.sse import StreamAssembler, StreamTooLargeError

HEAD = {"id": "c1", "created": 1, "model": "m", "system_fingerprint": None}


def event(choices: list[dict[str, object]], **extra: object) -> bytes:
    """One ``data:`` event of a chunk."""
    chunk = {**HEAD, "object": "chat.completion.chunk", "choices": choices, **extra}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def delta(content: str | None = None, finish: str | None = None, **more: object) -> bytes:
    """A chunk with one choice's delta."""
    d: dict[str, object] = {} if content is None else {"content": content}
    return event([{"index": 0, "delta": {**d, **more}, "finish_reason": finish}])


STREAM = (
    delta("", role="assistant") + delta("Hel") + delta("lo") + delta(finish="stop")
    + event([], usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
    + b"data: [DONE]\n\n"
)  # fmt: skip


def test_events_split_anywhere_join_into_the_completion() -> None:
    """Bytes cut at arbitrary places still give whole events, and the deltas add up."""
    assembler = StreamAssembler(1 << 20, keep_usage=True)
    events = []
    for i in range(0, len(STREAM), 7):
        events += assembler.feed(STREAM[i : i + 7])
    assert b"".join(events) == STREAM
    assert assembler.done
    assert assembler.rebuildable
    completion = assembler.completion()
    assert completion["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"]["total_tokens"] == 5


def test_the_usage_chunk_is_dropped_unless_asked_for() -> None:
    """The gateway asks for usage to charge it; a caller who did not ask does not see it."""
    assembler = StreamAssembler(1 << 20, keep_usage=False)
    events = assembler.feed(STREAM.replace(b"\n\n", b"\r\n\r\n"))
    assert len(events) == 5
    assert all(b'"usage"' not in e for e in events)
    assert assembler.usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_tool_calls_are_relayed_but_not_rebuilt() -> None:
    """An answer with tool-call deltas passes through whole but is not kept for replays."""
    assembler = StreamAssembler(1 << 20, keep_usage=True)
    call = [{"index": 0, "id": "t1", "type": "function", "function": {"name": "f"}}]
    events = assembler.feed(delta(tool_calls=call) + delta(finish="tool_calls"))
    assert len(events) == 2
    assert not assembler.rebuildable


def test_a_stream_past_the_bound_is_refused() -> None:
    """A provider streaming more than the response bound is cut off."""
    assembler = StreamAssembler(100, keep_usage=True)
    with pytest.raises(StreamTooLargeError):
        assembler.feed(STREAM)


def test_a_completion_replays_as_the_same_text() -> None:
    """A kept answer sent back as events reads as the original answer."""
    assembler = StreamAssembler(1 << 20, keep_usage=True)
    assembler.feed(STREAM)
    replay = b"".join(completion_events(assembler.completion(), include_usage=True))
    again = StreamAssembler(1 << 20, keep_usage=True)
    assert again.feed(replay)[-1] == b"data: [DONE]\n\n"
    assert again.completion()["choices"] == assembler.completion()["choices"]
    assert again.usage == assembler.usage
