"""A partner's API as a spec: an OpenAPI 3 document, or one JSON Schema of a request body.

:func:`load_spec` reads either into a :class:`Spec` of :class:`Operation` s (method, path
template, parameters, request body schema, responses), with local ``$ref`` s inlined and
OpenAPI 3.0's ``nullable`` turned into a JSON Schema type, so every schema here is plain JSON
Schema (2020-12). :meth:`Spec.check_request` says what is wrong with a request, each problem
naming the part of it (``header webhook-signature``, ``body $.result.team``).

A JSON Schema file describes one operation, ``POST /`` unless it says otherwise::

    {"x-sluice-operation": {"method": "POST", "path": "/hooks/triage"},
     "type": "object", "required": ["event_id"], ...}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import yaml

from sluice.contracts.schemas import SchemaError, check_schema, problems

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_MAX_REF_DEPTH = 32
_OPENAPI_ONLY = (
    "nullable",
    "example",
    "discriminator",
    "readOnly",
    "writeOnly",
    "xml",
    "externalDocs",
    "deprecated",
)


@dataclass(frozen=True, slots=True)
class Parameter:
    """A header, query or path parameter of an operation."""

    name: str
    where: str  # header | query | path
    required: bool
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Response:
    """One documented answer: its status, JSON body schema and example (if any)."""

    status: int
    schema: Mapping[str, Any] | None
    example: Any = None
    has_example: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path of a spec."""

    id: str
    method: str
    path: str
    parameters: tuple[Parameter, ...] = ()
    body: Mapping[str, Any] | None = None
    body_required: bool = False
    responses: tuple[Response, ...] = ()
    _pattern: re.Pattern[str] = field(default=re.compile(""), repr=False, compare=False)

    def matches(self, method: str, path: str) -> bool:
        """Whether a request with ``method`` on ``path`` is this operation."""
        return method.upper() == self.method and self._pattern.fullmatch(path) is not None

    def success(self) -> Response | None:
        """The first 2xx response (lowest status), the one a mock answers with."""
        ok = sorted((r for r in self.responses if 200 <= r.status < 300), key=lambda r: r.status)
        return ok[0] if ok else None


@dataclass(frozen=True, slots=True)
class Spec:
    """A partner's operations, with the path prefix of its first server (``/v1``)."""

    name: str
    source: Path
    operations: tuple[Operation, ...]
    base_path: str = ""

    def find(self, method: str, path: str) -> Operation | None:
        """The operation a request is for (``path`` without the base path), None if none."""
        return next((op for op in self.operations if op.matches(method, path)), None)

    def strip_base(self, path: str) -> str:
        """``path`` relative to the spec's base path (unchanged when it does not start so)."""
        if self.base_path and (path == self.base_path or path.startswith(self.base_path + "/")):
            return path[len(self.base_path) :] or "/"
        return path

    def check_request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        body: bytes,
    ) -> tuple[Operation | None, list[str]]:
        """The operation and every problem of a request (empty when it conforms)."""
        path = self.strip_base(path)
        op = self.find(method, path)
        if op is None:
            known = ", ".join(f"{o.method} {o.path}" for o in self.operations)
            return None, [f"{method.upper()} {path}: no such operation in {self.name} ({known})"]
        found: list[str] = []
        lowered = {k.lower(): v for k, v in headers.items()}
        path_values = _path_values(op, path)
        for param in op.parameters:
            value: str | None
            if param.where == "header":
                value = lowered.get(param.name.lower())
            elif param.where == "query":
                value = query.get(param.name)
            else:
                value = path_values.get(param.name)
            if value is None:
                if param.required:
                    found.append(f"{param.where} {param.name}: required, missing")
                continue
            found += [
                f"{param.where} {param.name}: {p.removeprefix('$: ')}"
                for p in problems(param.schema, _coerce(value, param.schema))
            ]
        if op.body is not None:
            if not body:
                if op.body_required:
                    found.append("body: required, missing")
            else:
                ctype = lowered.get("content-type", "").split(";")[0].strip().lower()
                if ctype != "application/json":
                    found.append(f"header content-type: expected application/json, got {ctype!r}")
                try:
                    doc = orjson.loads(body)
                except orjson.JSONDecodeError as exc:
                    found.append(f"body: not JSON ({exc})")
                else:
                    found += [f"body {p}" for p in problems(op.body, doc)]
        return op, found


def _coerce(value: str, schema: Mapping[str, Any]) -> Any:
    """A header or query string as the type its schema asks for, when it reads as one."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        return value
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def _path_values(op: Operation, path: str) -> dict[str, str]:
    match = op._pattern.fullmatch(path)
    return dict(match.groupdict()) if match else {}


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\})", template)
    regex = "".join(
        f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part) for part in parts
    )
    return re.compile(regex)


def inline_refs(node: Any, doc: Mapping[str, Any], where: str, depth: int = 0) -> Any:
    """``node`` with every local ``$ref`` (``#/components/...``) replaced by its target and
    OpenAPI-only keywords turned into JSON Schema; a recursive or unknown reference is a
    :class:`SchemaError` naming ``where``."""
    if depth > _MAX_REF_DEPTH:
        raise SchemaError(f"{where}: $ref nesting deeper than {_MAX_REF_DEPTH} (recursive?)")
    if isinstance(node, list):
        return [inline_refs(item, doc, where, depth) for item in node]
    if not isinstance(node, Mapping):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if not ref.startswith("#/"):
            raise SchemaError(f"{where}: only local references are supported, got {ref!r}")
        target: Any = doc
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")  # noqa: PLW2901 - JSON Pointer
            if not isinstance(target, Mapping) or part not in target:
                raise SchemaError(f"{where}: $ref {ref!r} points at nothing")
            target = target[part]
        return inline_refs(target, doc, where, depth + 1)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, Mapping):
            # Property names are data: a property called "example" stays.
            out[key] = {name: inline_refs(sub, doc, where, depth) for name, sub in value.items()}
        elif key not in _OPENAPI_ONLY:
            out[key] = inline_refs(value, doc, where, depth)
    if node.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _read(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read the spec: {exc.strerror}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SchemaError(f"{path}: not valid YAML or JSON: {exc}") from exc


def _example_of(media: Mapping[str, Any], schema: Any) -> tuple[bool, Any]:
    if "example" in media:
        return True, media["example"]
    examples = media.get("examples")
    if isinstance(examples, Mapping) and examples:
        first = next(iter(examples.values()))
        if isinstance(first, Mapping) and "value" in first:
            return True, first["value"]
    if isinstance(schema, Mapping):
        if "example" in schema:
            return True, schema["example"]
        if isinstance(schema.get("examples"), list) and schema["examples"]:
            return True, schema["examples"][0]
    return False, None


def _operation(doc: Mapping[str, Any], path: str, method: str, raw: Any, shared: Any) -> Operation:
    where = f"{method.upper()} {path}"
    if not isinstance(raw, Mapping):
        raise SchemaError(f"paths.{path}.{method}: must be a mapping")
    params: list[Parameter] = []
    for i, given in enumerate([*(shared or []), *(raw.get("parameters") or [])]):
        item = inline_refs(given, doc, f"{where} parameters[{i}]")
        if not isinstance(item, Mapping) or "name" not in item or "in" not in item:
            raise SchemaError(f"{where} parameters[{i}]: needs name and in")
        if item["in"] not in ("header", "query", "path"):
            continue  # cookies: not checked
        schema = item.get("schema") or {}
        check_schema(schema, f"{where} parameter {item['name']}")
        params.append(
            Parameter(
                str(item["name"]),
                str(item["in"]),
                bool(item.get("required", item["in"] == "path")),
                schema,
            )
        )
    body = None
    body_required = False
    request = raw.get("requestBody")
    if request is not None:
        request = inline_refs(request, doc, f"{where} requestBody")
        content = request.get("content") or {}
        media = content.get("application/json")
        if media is None:
            raise SchemaError(
                f"{where}: requestBody has no application/json content "
                f"(has {', '.join(content) or 'none'})"
            )
        body = media.get("schema") or {}
        check_schema(body, f"{where} requestBody")
        body_required = bool(request.get("required", False))
    responses: list[Response] = []
    for code, given in (raw.get("responses") or {}).items():
        if not str(code).isdigit():
            continue  # "default" and ranges: nothing a mock can answer with
        answer = inline_refs(given, doc, f"{where} responses.{code}")
        media = (answer.get("content") or {}).get("application/json")
        if media is None:
            responses.append(Response(int(code), None))
            continue
        schema = media.get("schema")
        if schema is not None:
            check_schema(schema, f"{where} responses.{code}")
        raw_media = (
            ((given.get("content") or {}).get("application/json") or {})
            if isinstance(given, Mapping)
            else {}
        )
        has, value = _example_of(raw_media, (raw_media.get("schema") or {}))
        if not has:
            has, value = _example_of(media, None)
        responses.append(Response(int(code), schema, value, has))
    op_id = str(raw.get("operationId") or where)
    return Operation(
        op_id,
        method.upper(),
        path,
        tuple(params),
        body,
        body_required,
        tuple(responses),
        _pattern(path),
    )


def spec_from_document(doc: Any, name: str, source: Path) -> Spec:
    """A :class:`Spec` from a parsed OpenAPI 3 document or JSON Schema."""
    if not isinstance(doc, Mapping):
        raise SchemaError(f"{source}: the top level must be a mapping")
    if "openapi" not in doc:
        marker = doc.get("x-sluice-operation") or {}
        schema = inline_refs(
            {k: v for k, v in doc.items() if k != "x-sluice-operation"}, doc, str(source)
        )
        check_schema(schema, str(source))
        method = str(marker.get("method", "POST")).upper()
        path = str(marker.get("path", "/"))
        ok = Response(int(marker.get("status", 200)), None)
        op = Operation(f"{method} {path}", method, path, (), schema, True, (ok,), _pattern(path))
        return Spec(name, source, (op,))
    if not str(doc["openapi"]).startswith("3."):
        raise SchemaError(f"{source}: openapi {doc['openapi']}: only OpenAPI 3 is read")
    operations = []
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, Mapping):
            raise SchemaError(f"{source}: paths.{path}: must be a mapping")
        for method in _METHODS:
            if method in item:
                operations.append(
                    _operation(doc, str(path), method, item[method], item.get("parameters"))
                )
    if not operations:
        raise SchemaError(f"{source}: the document has no operations")
    servers = doc.get("servers") or []
    base = urlsplit(str(servers[0].get("url", ""))).path.rstrip("/") if servers else ""
    return Spec(name, source, tuple(operations), base)


def load_spec(path: Path, name: str | None = None) -> Spec:
    """Read a spec file (YAML or JSON); :class:`SchemaError` names the file and the part."""
    return spec_from_document(_read(path), name or path.stem, path)
