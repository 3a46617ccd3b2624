"""Errors as ``application/problem+json`` (RFC 9457) with stable ``type`` URIs, and in the
OpenAI shape on the AI gateway's routes (OpenAI clients parse that)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

TYPE_BASE = "https://sluice.dev/problems/"


def problem(
    status: int,
    kind: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A problem response; ``kind`` becomes the stable ``type`` URI's last segment."""
    body = {"type": TYPE_BASE + kind, "title": title, "status": status, "detail": detail, **extra}
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def openai_error(
    status: int, message: str, kind: str, code: str, headers: dict[str, str] | None = None
) -> Response:
    """An error response in the OpenAI shape."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Response(orjson.dumps(body), status, headers, media_type="application/json")
