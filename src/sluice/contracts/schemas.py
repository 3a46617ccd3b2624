"""JSON Schemas as contracts: data generated from them, and problems found against them.

Generation uses ``hypothesis-jsonschema`` for every schema but objects. Its object strategy
drives a Hypothesis internal (``many.more()``) that the pinned Hypothesis no longer has, so
objects are built here from their ``properties`` and ``required`` (declared properties only,
which every ``additionalProperties`` allows), and every generated value is filtered through
the schema's validator, so what comes out always validates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import jsonschema
from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException
from hypothesis_jsonschema import from_schema

from sluice.errors import ConfigError

#: The largest integer JSON carries exactly (doubles).
_JSON_INT = 2**53
#: Nesting beyond which generated free-form values stop.
_MAX_LEAVES = 8
_SCALARS: st.SearchStrategy[Any] = (
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=12)
)
ANY_JSON: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=_MAX_LEAVES,
)


class SchemaError(ConfigError):
    """A schema that cannot be used: not a valid JSON Schema, or nothing can satisfy it."""


def _validator(schema: Mapping[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


def check_schema(schema: Any, where: str) -> None:
    """Raise :class:`SchemaError` naming ``where`` when ``schema`` is not a JSON Schema."""
    if not isinstance(schema, Mapping | bool):
        raise SchemaError(f"{where}: a schema must be a mapping, got {type(schema).__name__}")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise SchemaError(f"{where}: not a valid JSON Schema: {exc.message}") from exc


def problems(schema: Mapping[str, Any], value: Any, limit: int = 10) -> list[str]:
    """What is wrong with ``value`` under ``schema``: ``$.a.b: <rule>`` per error (empty when it
    validates), at most ``limit``, in a stable order."""
    errors = sorted(_validator(schema).iter_errors(value), key=lambda e: list(map(str, e.path)))
    out = []
    for error in errors[:limit]:
        where = "$" + "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
        )
        out.append(f"{where}: {error.message}")
    if len(errors) > limit:
        out.append(f"... and {len(errors) - limit} more")
    return out


def _object(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    props: Mapping[str, Any] = schema.get("properties") or {}
    required = [str(name) for name in schema.get("required") or ()]
    fixed = {name: strategy(props.get(name, {})) for name in required}
    optional = {name: strategy(sub) for name, sub in props.items() if name not in fixed}
    if not props and schema.get("additionalProperties", True) is not False:
        return st.dictionaries(st.text(max_size=8), ANY_JSON, max_size=3)
    return st.fixed_dictionaries(fixed, optional=optional)


def strategy(schema: Any) -> st.SearchStrategy[Any]:
    """A Hypothesis strategy of values that validate against ``schema`` (local ``$ref``s must
    be inlined first: see :func:`sluice.contracts.spec.inline_refs`)."""
    if schema is True or schema == {}:
        return ANY_JSON
    if not isinstance(schema, Mapping):
        raise SchemaError(f"cannot generate from {schema!r}")
    kind = schema.get("type")
    if kind == "object" and not any(k in schema for k in ("allOf", "anyOf", "oneOf", "not")):
        base = _object(schema)
    elif kind == "array" and isinstance(schema.get("items"), Mapping):
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", low + 3))
        base = st.lists(strategy(schema["items"]), min_size=low, max_size=high)
    elif isinstance(schema.get("anyOf") or schema.get("oneOf"), list) and "type" not in schema:
        options = schema.get("anyOf") or schema.get("oneOf")
        base = st.one_of([strategy(option) for option in cast(list[Any], options)])
    else:
        bounded = dict(schema)
        if kind in ("integer", "number"):
            # Unbounded, hypothesis-jsonschema draws integers past 64 bits, which no JSON
            # encoder here writes; beyond 2**53 JSON numbers lose precision anyway.
            bounded.setdefault("minimum", -_JSON_INT)
            bounded.setdefault("maximum", _JSON_INT)
        base = from_schema(bounded)
    check = _validator(schema)
    return base.filter(check.is_valid)


def example(schema: Any, where: str) -> Any:
    """The simplest value that validates against ``schema`` (deterministic: Hypothesis's
    shrunk minimum); :class:`SchemaError` naming ``where`` when there is none."""
    try:
        return find(
            strategy(schema),
            lambda _: True,
            settings=settings(
                database=None, max_examples=200, suppress_health_check=list(HealthCheck)
            ),
        )
    except (HypothesisException, SchemaError, TypeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SchemaError(f"{where}: no value can be generated from the schema: {reason}") from exc
