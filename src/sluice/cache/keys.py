"""Cache keys: prompt normalization and stable hashes of everything that shapes an answer.

Normalization (:func:`normalize_prompt`) decides which requests count as "the same":

* **Unicode NFC, trimmed, internal whitespace runs collapsed to one space** - always. Tickets
  arrive through web forms, e-mail and chat, which add trailing newlines and doubled spaces that
  carry no meaning. MiniLM's WordPiece tokenizer splits on whitespace, so its vectors are
  identical; wordllama's are not bit-identical (cosine ~0.95 between ``"a  b"`` and ``"a b"``),
  but the difference is an artefact of spacing, and the answer to the canonical text is a
  correct answer to the request.
* **Case folding - only for models declared case-insensitive** (``casefold=True``). An uncased
  encoder (all-MiniLM-L6-v2 lower-cases its input) gives bit-identical answers for ``"PIN"`` and
  ``"pin"``, so folding only raises the hit rate. wordllama and chat models see case (``"US"``
  vs ``"us"``), so folding for them could serve the answer to a different question: off by
  default.

Keys are SHA-256 over canonical JSON (sorted keys), so they are short, fixed length, safe in
any backend, and equal across processes and machines.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import orjson

from sluice.models.base import ModelRequest

_SPACE = re.compile(r"\s+")


def normalize_prompt(text: str, *, casefold: bool = False) -> str:
    """Canonical form of a prompt for cache keys (see the module docstring for the rules)."""
    text = _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
    return text.casefold() if casefold else text


def stable_hash(namespace: str, fields: Mapping[str, Any]) -> str:
    """``namespace:`` + SHA-256 of ``fields`` as canonical JSON.

    Values that JSON cannot hold are keyed by their ``str``, so unusual parameter types still
    give a deterministic key instead of an error at call time.
    """
    payload = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS, default=str)
    return f"{namespace}:{hashlib.sha256(payload).hexdigest()}"


def response_key(
    model: str,
    version: str,
    request: ModelRequest,
    *,
    casefold: bool = False,
    namespace: str = "resp",
) -> str:
    """Key of one model answer: model name and version, normalized prompt, parameters.

    Labels and context (retrieved neighbours) are part of the key too: they change what a
    model answers just as parameters do.
    """
    fields: dict[str, Any] = {
        "model": model,
        "version": version,
        "prompt": normalize_prompt(request.text, casefold=casefold),
        "params": dict(request.params),
        "labels": None if request.labels is None else list(request.labels),
        "context": [dict(c) for c in request.context],
    }
    if request.messages:  # a generative call: what was sent, exactly (whitespace may matter)
        fields["generate"] = {
            "template": request.template,
            "messages": [dict(m) for m in request.messages],
            "schema": request.output_schema,
            "tools": [dict(t) for t in request.tools],
        }
    return stable_hash(namespace, fields)
