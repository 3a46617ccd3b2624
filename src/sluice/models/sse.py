"""Server-sent events of chat completions, read: split into events, their chunks joined.

:class:`StreamAssembler` takes the bytes of a streamed chat completion as they arrive, returns
the complete events and joins their deltas into the completion a non-streamed answer would
have been. The model client reads a streamed answer with it (passing each text delta on as it
comes, :mod:`sluice.models.openai_client`), and the AI gateway relays streams through it
(:mod:`sluice.ai_gateway.streaming`), so both read streams the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

#: The usage of an answer that reported none.
EMPTY_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


class StreamTooLargeError(ValueError):
    """A streamed answer grew past the gateway's response bound."""


class StreamAssembler:
    """Splits relayed bytes into events and joins their chunks into one completion."""

    def __init__(
        self,
        max_bytes: int,
        *,
        keep_usage: bool,
        on_text: Callable[[str], None] | None = None,
    ) -> None:
        self._max_bytes = max_bytes
        self._keep_usage = keep_usage
        # Called with each text delta of the first choice as it is read.
        self._on_text = on_text
        self._buffer = b""
        self._size = 0
        self._head: dict[str, Any] = {}
        self._contents: dict[int, list[str]] = {}
        self._roles: dict[int, str] = {}
        self._finish: dict[int, Any] = {}
        self.usage: dict[str, Any] | None = None
        self.done = False
        # Deltas other than text (tool calls, refusals, logprobs) are relayed but not joined:
        # an answer that had them cannot be rebuilt, so it is neither cached nor replayed.
        self.rebuildable = True

    def feed(self, data: bytes) -> list[bytes]:
        """The complete events in ``data`` (plus what was buffered), each ending in a blank line.

        A usage-only chunk the caller did not ask for is dropped from what is returned.
        """
        self._size += len(data)
        if self._size > self._max_bytes:
            raise StreamTooLargeError(f"streamed answer exceeds {self._max_bytes} bytes")
        buffer = self._buffer + data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        *events, self._buffer = buffer.split(b"\n\n")
        out = []
        for event in events:
            if event and self._read(event):
                out.append(event + b"\n\n")
        return out

    def _read(self, event: bytes) -> bool:
        """Take in one event; whether to pass it on."""
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                self.done = True
                return True
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                return True  # not ours to judge: pass it on untouched
            if not isinstance(chunk, dict):
                return True
            if not self._head:
                self._head = {k: chunk.get(k) for k in ("id", "created", "model")}
                self._head["system_fingerprint"] = chunk.get("system_fingerprint")
            usage = chunk.get("usage")
            if isinstance(usage, dict):
                self.usage = usage
            choices = chunk.get("choices")
            if isinstance(choices, list):
                for choice in choices:
                    self._choice(choice)
                if not choices and usage is not None and not self._keep_usage:
                    return False
        return True

    def _choice(self, choice: Any) -> None:
        if not isinstance(choice, dict):
            return
        index = choice.get("index", 0)
        index = index if isinstance(index, int) else 0
        delta = choice.get("delta")
        if choice.get("logprobs") is not None:
            self.rebuildable = False
        if isinstance(delta, dict):
            if any(v is not None for k, v in delta.items() if k not in ("role", "content")):
                self.rebuildable = False
            if isinstance(delta.get("role"), str):
                self._roles[index] = delta["role"]
            if isinstance(delta.get("content"), str):
                self._contents.setdefault(index, []).append(delta["content"])
                if self._on_text is not None and index == 0 and delta["content"]:
                    self._on_text(delta["content"])
        if choice.get("finish_reason") is not None:
            self._finish[index] = choice["finish_reason"]

    def completion(self) -> dict[str, Any]:
        """The completion the events added up to (as a non-streamed answer would be)."""
        indexes = sorted(set(self._contents) | set(self._roles) | set(self._finish)) or [0]
        choices = [
            {
                "index": i,
                "message": {
                    "role": self._roles.get(i, "assistant"),
                    "content": "".join(self._contents.get(i, ())),
                },
                "finish_reason": self._finish.get(i),
            }
            for i in indexes
        ]
        return {
            **self._head,
            "object": "chat.completion",
            "choices": choices,
            "usage": self.usage or dict(EMPTY_USAGE),
        }
