"""``POST /v1/indexes/{name}/items``: stream resolved tickets into a live retrieval index.

Body: ``{"items": [{"id", "text", "intent", "resolution"}, ...], "delete": ["id", ...]}``, at
most :data:`MAX_ITEMS` items per request. Items are embedded off the event loop and upserted
(a repeated id replaces the old item); the retrieval cache keys on the index generation, so
no stale neighbours are served after a delta. Deltas apply to the index of the process that
receives them; ``sluice index build`` (the nightly job) rewrites the saved index for all.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sluice.errors import InvalidInputError, NotFoundError

MAX_ITEMS = 1_000
_FIELDS = ("id", "text", "intent", "resolution")


def _problems(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["(top): expected an object with items and/or delete"]
    problems = [f"{key}: unknown field" for key in body if key not in ("items", "delete")]
    items = body.get("items", [])
    deletes = body.get("delete", [])
    if not isinstance(items, list) or not isinstance(deletes, list):
        return [*problems, "items and delete must be lists"]
    if len(items) + len(deletes) > MAX_ITEMS:
        problems.append(f"at most {MAX_ITEMS} items and deletions per request")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"items[{i}]: expected an object")
            continue
        problems += [
            f"items[{i}].{field}: required non-empty string"
            for field in _FIELDS
            if not isinstance(item.get(field), str) or not item.get(field)
        ]
    problems += [
        f"delete[{i}]: expected an id" for i, d in enumerate(deletes) if not isinstance(d, str)
    ]
    return problems


async def apply_delta(indexes: Any, name: str, body: Any) -> dict[str, int]:
    """Validate and apply one delta; return counts of added, replaced and deleted items."""
    from sluice.retrieval.index import IndexItem

    if indexes is None or name not in indexes:
        raise NotFoundError(f"unknown index {name!r}")
    problems = _problems(body)
    if problems:
        raise InvalidInputError("invalid index delta", problems)
    index = indexes[name]
    items = [IndexItem(*(str(item[f]) for f in _FIELDS)) for item in body.get("items", [])]
    added, replaced = await asyncio.to_thread(index.upsert, items) if items else (0, 0)
    deleted = index.delete(body.get("delete", [])) if body.get("delete") else 0
    return {"added": added, "replaced": replaced, "deleted": deleted, "size": len(index)}
