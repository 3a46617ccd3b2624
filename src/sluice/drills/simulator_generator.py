"""The model simulator's generative answers: text, structured output and tool calls.

Everything is derived from the request, so the same prompt always gets the same answer: the
random source is seeded by a SHA-256 of the messages (and of the schema or tools asked for).

- **Text** of realistic length (40 to 160 words, in sentences), mixing a plain support
  vocabulary with words of the prompt; a ``max_tokens`` shorter than that cuts it, with
  ``finish_reason: length`` as a provider does.
- **Structured output**: a JSON value generated from the ``json_schema`` asked for (objects,
  required and optional properties, strings with length bounds and simple formats, numbers and
  integers within their bounds, booleans, enums and consts, arrays within ``minItems`` and
  ``maxItems``, ``anyOf``/``oneOf``, local ``$ref``); ``pattern`` and ``multipleOf`` are not
  honoured. :func:`break_instance` makes an answer that does not validate, to exercise repair.
- **Tool calls**: one declared function, with arguments generated from its parameters schema.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema
import orjson

#: The plain vocabulary of generated text (a support desk's), split once.
_VOCABULARY = (
    "account card payment transfer balance app support team request update details check "
    "confirm review days working soon today help issue thanks please message customer bank "
    "refund charge fee limit verify identity security number settings process time within "
    "once again usually able sent receive arrive new pending status notice email phone "
    "option hours week quickly safe secure reply information case note following steps "
    "open choose"
)
_WORDS = tuple(_VOCABULARY.split())
_PROMPT_WORD = re.compile(r"[A-Za-z]{4,}")
_MAX_DEPTH = 8


def request_seed(*parts: Any) -> int:
    """A seed from the request's content: equal requests get equal answers."""
    digest = hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).digest()
    return int.from_bytes(digest[:8], "big")


def prompt_words(messages: Sequence[Any]) -> list[str]:
    """Words of the messages' text, lower-cased, to echo in answers."""
    words: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if isinstance(content, str):
            words += [w.lower() for w in _PROMPT_WORD.findall(content)]
    return words


def sentences(rng: random.Random, words: int, echo: Sequence[str] = ()) -> str:
    """About ``words`` words of plain sentences; a fifth of the words come from ``echo``."""
    out: list[str] = []
    left = max(1, words)
    while left > 0:
        length = min(left, rng.randint(6, 16))
        chosen = [
            rng.choice(echo) if echo and rng.random() < 0.2 else rng.choice(_WORDS)
            for _ in range(length)
        ]
        out.append(" ".join(chosen).capitalize() + ".")
        left -= length
    return " ".join(out)


def text_answer(
    messages: Sequence[Any], max_tokens: int | None, chars_per_token: int
) -> tuple[str, str]:
    """The text answer to ``messages`` and its finish reason (``stop``, or ``length`` when
    ``max_tokens`` cut it)."""
    rng = random.Random(request_seed("text", messages))
    content = sentences(rng, rng.randint(40, 160), prompt_words(messages))
    if max_tokens is not None and len(content) > max_tokens * chars_per_token:
        return content[: max_tokens * chars_per_token].rstrip(), "length"
    return content, "stop"


def instance(
    schema: Mapping[str, Any],
    rng: random.Random,
    root: Mapping[str, Any] | None = None,
    depth: int = 0,
) -> Any:
    """A value that validates against ``schema`` (within the keywords the module lists)."""
    root = schema if root is None else root
    if depth > _MAX_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        return instance(
            {**target, **{k: v for k, v in schema.items() if k != "$ref"}}, rng, root, depth + 1
        )
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return instance(rng.choice(options), rng, root, depth + 1)
    kind = _kind(schema)
    if kind == "object":
        return _object(schema, rng, root, depth)
    if kind == "array":
        return _array(schema, rng, root, depth)
    if kind == "string":
        return _string(schema, rng)
    if kind in ("integer", "number"):
        return _number(schema, rng, integer=kind == "integer")
    if kind == "boolean":
        return rng.random() < 0.5
    return None


def break_instance(schema: Mapping[str, Any], valid: Any, rng: random.Random) -> str:
    """JSON text close to ``valid`` that does not validate against ``schema``: a required
    property left out, a property of the wrong type, or (when neither breaks it) JSON cut
    short, as a model that ran out of tokens writes."""
    validator = jsonschema.Draft202012Validator(schema)
    candidates: list[Any] = []
    if isinstance(valid, dict):
        for name in schema.get("required") or ():
            candidates.append({k: v for k, v in valid.items() if k != name})
        for name, value in valid.items():
            candidates.append({**valid, name: 12345 if isinstance(value, str) else "oops"})
    else:
        candidates.append({"unexpected": True})
    broken = [c for c in candidates if not validator.is_valid(c)]
    if broken:
        return orjson.dumps(rng.choice(broken)).decode()
    text = orjson.dumps(valid).decode()
    return text[: max(1, len(text) // 2)]


def tool_call(tools: Sequence[Any], tool_choice: Any, rng: random.Random) -> dict[str, Any] | None:
    """A ``tool_calls`` entry for one declared function (the one ``tool_choice`` names, if
    any), with arguments from its parameters schema; None when no function is declared."""
    functions = [
        t["function"]
        for t in tools
        if isinstance(t, dict)
        and t.get("type") == "function"
        and isinstance(t.get("function"), dict)
        and t["function"].get("name")
    ]
    if isinstance(tool_choice, dict):
        named = (tool_choice.get("function") or {}).get("name")
        functions = [f for f in functions if f["name"] == named]
    if not functions:
        return None
    function = rng.choice(functions)
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    arguments = instance(parameters, rng) if isinstance(parameters, dict) else {}
    return {
        "id": f"call_{rng.getrandbits(64):016x}",
        "type": "function",
        "function": {"name": str(function["name"]), "arguments": orjson.dumps(arguments).decode()},
    }


def _kind(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"]: the first type that is not null
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        return "object" if "properties" in schema else "string" if schema == {} else None
    return str(kind)


def _object(
    schema: Mapping[str, Any], rng: random.Random, root: Mapping[str, Any], depth: int
) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    value = {}
    for name, sub in properties.items():
        # Optional properties come and go, as a model's do.
        if name in required or rng.random() < 0.5:
            value[name] = instance(sub if isinstance(sub, dict) else {}, rng, root, depth + 1)
    for name in required - set(properties):
        value[name] = sentences(rng, 3)
    return value


def _array(
    schema: Mapping[str, Any], rng: random.Random, root: Mapping[str, Any], depth: int
) -> list[Any]:
    low = int(schema.get("minItems", 0))
    high = int(schema.get("maxItems", low + 3))
    items = schema.get("items")
    sub = items if isinstance(items, dict) else {}
    return [instance(sub, rng, root, depth + 1) for _ in range(rng.randint(low, max(low, high)))]


def _string(schema: Mapping[str, Any], rng: random.Random) -> str:
    formats = {
        "date-time": "2026-01-15T09:30:00Z",
        "date": "2026-01-15",
        "time": "09:30:00Z",
        "email": "customer@example.com",
        "uri": "https://example.com/help",
        "uuid": "00000000-0000-4000-8000-000000000000",
    }
    if schema.get("format") in formats:
        return formats[str(schema["format"])]
    low = int(schema.get("minLength", 0))
    high = int(schema.get("maxLength", max(low, 200)))
    text = sentences(rng, rng.randint(3, 24))[:high].rstrip()
    while len(text) < min(low, high):  # an unsatisfiable pair of bounds must not loop
        text = (text + " " + sentences(rng, 8))[:high]
    return text


def _number(schema: Mapping[str, Any], rng: random.Random, *, integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
    high = schema.get("maximum", schema.get("exclusiveMaximum", max(low, 0) + 100))
    step = 1 if integer else 0.01
    if "exclusiveMinimum" in schema:
        low += step
    if "exclusiveMaximum" in schema:
        high -= step
    if integer:
        return rng.randint(int(-(-low // 1)), int(high // 1))
    return round(rng.uniform(low, high), 2) if high > low else float(low)
