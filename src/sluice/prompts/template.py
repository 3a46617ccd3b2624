"""One prompt template: messages with placeholders, typed variables, model parameters and an
optional output schema, addressed by its content.

The version is a short SHA-256 of the canonical JSON of the parsed template, so reformatting
the YAML, reordering keys or editing comments keeps it, and any change of content (a word of a
message, a variable's type, a parameter) makes a new one. ``name@version`` is the id recorded
with every call made from the template.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from sluice.prompts.placeholders import Placeholder, find_placeholders
from sluice.prompts.render import RenderedPrompt, TemplateError, fill
from sluice.prompts.variables import Variable, parse_variables

#: Hex digits of the SHA-256 kept in a version: 48 bits, ample for one app's history.
VERSION_CHARS = 12
ROLES = ("system", "user", "assistant")
_KEYS = frozenset(
    {
        "name",
        "description",
        "model",
        "params",
        "system",
        "user",
        "messages",
        "variables",
        "output_schema",
    }
)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: The model parameters a template may set, with the check each value must pass.
PARAMS: dict[str, tuple[str, Any]] = {
    "temperature": ("a number from 0 to 2", lambda v: _number(v) and 0 <= v <= 2),
    "top_p": ("a number from 0 to 1", lambda v: _number(v) and 0 <= v <= 1),
    "max_tokens": ("a positive integer", lambda v: _integer(v) and v > 0),
    "max_completion_tokens": ("a positive integer", lambda v: _integer(v) and v > 0),
    "presence_penalty": ("a number from -2 to 2", lambda v: _number(v) and -2 <= v <= 2),
    "frequency_penalty": ("a number from -2 to 2", lambda v: _number(v) and -2 <= v <= 2),
    "seed": ("an integer", _integer),
    "stop": (
        "a string or a list of at most 4 strings",
        lambda v: (
            isinstance(v, str)
            or (isinstance(v, list) and 0 < len(v) <= 4 and all(isinstance(s, str) for s in v))
        ),
    ),
}


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a template: its role, its text and the placeholders in it."""

    role: str
    content: str
    placeholders: tuple[Placeholder, ...] = ()
    #: Where the message is in the file (``user``, ``messages[2].content``), for problems.
    path: str = ""


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """A parsed, checked template; :meth:`render` fills it for one call."""

    name: str
    version: str
    messages: tuple[Message, ...]
    variables: Mapping[str, Variable]
    params: Mapping[str, Any] = field(default_factory=dict)
    model: str | None = None
    output_schema: Mapping[str, Any] | None = None
    description: str = ""
    source: str = ""

    @property
    def id(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def render(self, values: Mapping[str, Any]) -> RenderedPrompt:
        """The messages filled with ``values``; raises :class:`TemplateError` naming every
        missing, extra or mistyped variable (a value over its ``max_chars`` is mistyped)."""
        problems = [
            f"{name}: not a variable of this template"
            for name in sorted(set(values) - set(self.variables))
        ]
        filled: dict[str, Any] = {}
        for name, variable in self.variables.items():
            if name in values:
                why = variable.problem(values[name])
                if why is not None:
                    problems.append(f"{name}: {why}")
                filled[name] = values[name]
            elif variable.required:
                problems.append(f"{name}: missing (required, {variable.type})")
            else:
                filled[name] = variable.default
        if problems:
            raise TemplateError(f"template {self.id}: cannot render", problems)
        messages = [
            {"role": m.role, "content": fill(m.content, m.placeholders, filled)}
            for m in self.messages
        ]
        return RenderedPrompt(
            template=self.name,
            version=self.version,
            messages=messages,
            params=dict(self.params),
            model=self.model,
            output_schema=None if self.output_schema is None else dict(self.output_schema),
        )


def parse_template(
    raw: Any, name: str, source: str = ""
) -> tuple[PromptTemplate | None, list[str]]:
    """A template from its parsed YAML, or None and every problem, each ``path: reason``.

    ``name`` is used unless the file names itself (``name:``).
    """
    if not isinstance(raw, dict):
        return None, ["(file): expected a mapping with 'user' or 'messages'"]
    problems = [
        f"{key}: unknown key (known: {', '.join(sorted(_KEYS))})"
        for key in sorted(set(raw) - _KEYS, key=str)
    ]
    name = raw.get("name", name)
    if not isinstance(name, str) or not name or "@" in name:
        problems.append("name: a non-empty string without '@'")
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.append("description: must be a string")
    model = raw.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        problems.append("model: a model or model group name")
    messages = _messages(raw, problems)
    variables = parse_variables(raw.get("variables"), problems)
    _check_usage(messages, variables, problems)
    params = _params(raw.get("params"), problems)
    schema = _schema(raw.get("output_schema"), problems)
    if problems:
        return None, problems
    content = {
        "name": name,
        "description": description,
        "model": model,
        "params": params,
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "variables": {n: v.canonical() for n, v in variables.items()},
        "output_schema": schema,
    }
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    version = hashlib.sha256(canonical.encode()).hexdigest()[:VERSION_CHARS]
    template = PromptTemplate(
        name=name,
        version=version,
        messages=tuple(messages),
        variables=variables,
        params=params,
        model=model,
        output_schema=schema,
        description=description,
        source=source,
    )
    return template, []


def _messages(raw: Mapping[str, Any], problems: list[str]) -> list[Message]:
    listed = raw.get("messages")
    if listed is not None and ("system" in raw or "user" in raw):
        problems.append("messages: give either 'messages' or 'system'/'user', not both")
        return []
    if listed is None:
        listed = [
            {"role": role, "content": raw[role]} for role in ("system", "user") if role in raw
        ]
        paths = [role for role in ("system", "user") if role in raw]
    elif isinstance(listed, list):
        paths = [f"messages[{i}]" for i in range(len(listed))]
    else:
        problems.append("messages: expected a list of {role, content}")
        return []
    if not any(isinstance(item, dict) and item.get("role") == "user" for item in listed):
        problems.append("user: a template needs a 'user' message (or 'messages' with one)")
    messages = []
    for path, item in zip(paths, listed, strict=True):
        if not isinstance(item, dict) or set(item) != {"role", "content"}:
            problems.append(f"{path}: expected a mapping with 'role' and 'content'")
            continue
        role, text = item["role"], item["content"]
        where = path if path in ROLES else f"{path}.content"
        if role not in ROLES:
            problems.append(f"{path}.role: must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{where}: must be non-empty text")
            continue
        found, malformed = find_placeholders(text)
        problems.extend(f"{where}: {why}" for why in malformed)
        messages.append(Message(str(role), text, tuple(found), where))
    return messages


def _check_usage(
    messages: list[Message], variables: Mapping[str, Variable], problems: list[str]
) -> None:
    """Every placeholder names a declared variable (fields only of objects), and every
    declared variable is used."""
    used = set()
    for message in messages:
        for placeholder in message.placeholders:
            where = message.path
            variable = variables.get(placeholder.variable)
            used.add(placeholder.variable)
            if variable is None:
                known = ", ".join(sorted(variables)) or "none"
                problems.append(
                    f"{where}: unknown variable {{{{ {placeholder.dotted} }}}} (declared: {known})"
                )
            elif len(placeholder.path) > 1 and variable.type != "object":
                owner = f"{placeholder.variable!r}, which is a {variable.type}"
                problems.append(f"{where}: {{{{ {placeholder.dotted} }}}} reads a field of {owner}")
    for name in sorted(set(variables) - used):
        problems.append(f"variables.{name}: declared but not used in any message")


def _params(raw: Any, problems: list[str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("params: expected a mapping of model parameters")
        return {}
    for key, value in raw.items():
        check = PARAMS.get(key)
        if check is None:
            problems.append(f"params.{key}: unknown parameter (known: {', '.join(PARAMS)})")
        elif not check[1](value):
            problems.append(f"params.{key}: must be {check[0]}")
    return dict(raw)


def _schema(raw: Any, problems: list[str]) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append("output_schema: expected a JSON Schema mapping")
        return None
    try:
        jsonschema.Draft202012Validator.check_schema(raw)
    except jsonschema.SchemaError as error:
        where = ".".join(str(part) for part in error.absolute_path)
        problems.append(f"output_schema{'.' + where if where else ''}: {error.message}")
        return None
    if raw.get("type") != "object":
        problems.append("output_schema.type: must be 'object' (a step's output is an object)")
    return dict(raw)
