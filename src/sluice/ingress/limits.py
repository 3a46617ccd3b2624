"""Bounds on what a request may carry, and the rules of its headers and parameters.

One set of rules for every route, the workflow API, webhooks, index deltas and the AI
gateway alike: body size, JSON nesting depth and field count (checked when the body is read,
so no later step meets a document it cannot write back), idempotency keys of 1 to
:data:`MAX_IDEMPOTENCY_KEY_CHARS` characters, and credentials and keys sent once.
A request that breaks one is refused with :class:`RequestError` before anything is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from sluice.errors import ConfigError, InvalidInputError

# orjson reads 1,024 levels but writes only 254; every later step (the event row, a step's
# result wrapping its input, a relayed chat body) writes what was read, so the depth limit
# stays far below the writer's, whatever the configuration says.
MAX_DEPTH_CEILING = 128
_CONTAINERS = frozenset({dict, list})
MAX_IDEMPOTENCY_KEY_CHARS = 255  # an idempotency key is an id, not a payload
# Headers a request may carry at most once: taking the first of two would let a proxy and
# the server disagree about who is calling or which request this is.
SINGLE_HEADERS = frozenset(
    {b"authorization", b"idempotency-key", b"webhook-id", b"webhook-timestamp",
     b"webhook-signature"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-request limits; requests past them are refused before any other work."""

    max_body_bytes: int = 1 << 20
    max_depth: int = 32
    max_fields: int = 2_000

    def __post_init__(self) -> None:
        if not 0 < self.max_depth <= MAX_DEPTH_CEILING:
            raise ConfigError(
                f"max_depth: from 1 to {MAX_DEPTH_CEILING} levels (later steps write the JSON "
                "back, and orjson writes at most 254)"
            )


class RequestError(InvalidInputError):
    """A request that breaks a rule of the HTTP API itself (a header, a parameter, the shape
    of its JSON), as opposed to a workflow's schema: refused before anything is stored.

    ``status`` is the HTTP status (400, 413 or 415) and ``kind`` the problem type's slug.
    """

    def __init__(self, message: str, *, status: int = 400, kind: str = "bad-request") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def shape_problem(value: Any, limits: Limits) -> str | None:
    """Why ``value`` (parsed JSON: plain dicts and lists) is too deep or too wide, or None
    when it is within the limits.

    Level by level and iterative, so a hostile document cannot exhaust the interpreter's
    stack; only containers are visited (it runs on the AI gateway's every request).
    """
    level = [value] if isinstance(value, dict | list) else []
    depth = 1
    fields = 0
    while level:
        if depth > limits.max_depth:
            return f"JSON nesting deeper than {limits.max_depth} levels"
        below: list[Any] = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            fields += len(children)
            if fields > limits.max_fields:
                return f"more than {limits.max_fields} JSON fields and items"
            # Exact types: parsed JSON holds plain dicts and lists, and an isinstance test
            # costs several times more on this per-request path.
            below += [child for child in children if type(child) in _CONTAINERS]
        level = below
        depth += 1
    return None


def read_json(body: bytes, limits: Limits) -> Any:
    """Parse ``body`` and check its shape: the value, or a :class:`RequestError`.

    400 ``malformed-json`` for text that is not JSON, 413 ``payload-too-complex`` for JSON
    past ``max_depth`` or ``max_fields`` (orjson's own depth refusal included).
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc).lower():
            raise RequestError(
                f"JSON nesting deeper than {limits.max_depth} levels",
                status=413,
                kind="payload-too-complex",
            ) from None
        raise RequestError(f"the body is not valid JSON: {exc}", kind="malformed-json") from None
    if (too_big := shape_problem(data, limits)) is not None:
        raise RequestError(too_big, status=413, kind="payload-too-complex")
    return data


def check_single(headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Refuse a request that repeats one of :data:`SINGLE_HEADERS` (raw ASGI headers)."""
    seen: set[bytes] = set()
    for name, _ in headers:
        lowered = name.lower()
        if lowered in SINGLE_HEADERS:
            if lowered in seen:
                raise RequestError(
                    f"the {lowered.decode()} header is sent more than once: send it once",
                    kind="duplicate-header",
                )
            seen.add(lowered)


def checked_idempotency_key(value: str | None) -> str | None:
    """The ``Idempotency-Key`` header's key, None without one; a :class:`RequestError` for a
    blank key (it would make unrelated keyless-looking requests collide) or one longer than
    :data:`MAX_IDEMPOTENCY_KEY_CHARS`."""
    if value is None:
        return None
    if not value.strip():
        raise RequestError(
            "Idempotency-Key is empty or blank: send 1 to "
            f"{MAX_IDEMPOTENCY_KEY_CHARS} visible characters, or no header",
            kind="bad-idempotency-key",
        )
    if len(value) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise RequestError(
            f"Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY_CHARS} characters",
            kind="bad-idempotency-key",
        )
    return value
