"""One ``send`` a response: a transport that holds a response's head until its body follows.

uvicorn writes a response's status line and headers, then its body, each with its own
``transport.write``; the event loop sends each at once, so every small response costs two
``send`` system calls (about a sixth of the event loop's time per accepted webhook).
:class:`CoalescingTransport` holds a write that starts a response (``HTTP/``) and sends it
together with the next write, which for a complete response comes in the same step of the
same task. A head with no body behind it yet (a stream whose first chunk is slow) leaves on
the loop's next iteration, and closing the transport sends it first, so no byte is delayed
by more than one iteration and the order of the bytes never changes.
"""

from __future__ import annotations

import asyncio
from typing import Any

_HEAD = b"HTTP/"


class CoalescingTransport(asyncio.Transport):
    """Wraps a connection's transport; see the module docstring."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    # writes ---------------------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` after what is held; hold it instead when it starts a response."""
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + bytes(data))
        elif data[:5] == _HEAD:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        """Send every buffer of ``list_of_data`` (after what is held), in order."""
        self.write(b"".join(list_of_data))

    def flush(self) -> None:
        """Send what is held, if anything (nothing once the connection is closing: the
        client that left while its head was held is owed no bytes)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def write_eof(self) -> None:
        """Send what is held, then close the write end."""
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        """Whether the wrapped transport can close its write end."""
        return self._transport.can_write_eof()

    def get_write_buffer_size(self) -> int:
        """Bytes not yet sent, the held head included."""
        held = 0 if self._held is None else len(self._held)
        return self._transport.get_write_buffer_size() + held

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The wrapped transport's flow-control limits."""
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the wrapped transport's flow-control limits."""
        self._transport.set_write_buffer_limits(high, low)

    # the rest, as the wrapped transport does it ---------------------------------------------
    def close(self) -> None:
        """Send what is held, then close."""
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping what is not sent (the held head too)."""
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:
        """Whether the wrapped transport is closing or closed."""
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The wrapped transport's ``name`` (peer name, socket, ...)."""
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Hand the wrapped transport's events to ``protocol``."""
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol the wrapped transport reports to."""
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        """Whether the wrapped transport reads."""
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        """Stop reading (flow control)."""
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again (flow control)."""
        self._transport.resume_reading()


__all__ = ["CoalescingTransport"]
