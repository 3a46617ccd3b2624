"""Rendering a template: placeholders filled with checked values, or an error naming each
problem, never an empty string.

Strings are inserted as they are; any other value (numbers, booleans, arrays, objects) as
compact JSON, so a model sees exactly the data a step passed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sluice.errors import StepError
from sluice.prompts.placeholders import Placeholder

#: Characters per token and framing tokens of the input estimate: the rule of
#: ``sluice.models.estimate.prompt_tokens`` (a test keeps the two equal), restated here
#: because prompts sit below the models in the layers.
CHARS_PER_TOKEN = 4
FRAMING_TOKENS = 8


class TemplateError(StepError):
    """A template could not be rendered with the values given; ``problems`` names each one.

    Not retryable: the same event renders the same way on every attempt, so the step fails
    (and is dead-lettered, replayable once the template or the data is fixed).
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        self.problems = list(problems)
        text = message if not self.problems else message + "\n  " + "\n  ".join(self.problems)
        super().__init__(text, retryable=False)


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """A template rendered for one call: chat messages in OpenAI's shape and what goes with
    them."""

    template: str
    version: str
    messages: list[dict[str, str]]
    params: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    output_schema: dict[str, Any] | None = None

    @property
    def template_id(self) -> str:
        """``name@version``: the template and the exact content it was rendered from."""
        return f"{self.template}@{self.version}"

    def estimated_input_tokens(self) -> int:
        """Input tokens the messages will cost, estimated as the spend budgets do."""
        chars = sum(len(message["content"]) for message in self.messages)
        return math.ceil(chars / CHARS_PER_TOKEN) + FRAMING_TOKENS

    def max_output_tokens(self) -> int | None:
        """The most the model may write (``max_tokens``), when the template bounds it."""
        for key in ("max_tokens", "max_completion_tokens"):
            value = self.params.get(key)
            if isinstance(value, int):
                return value
        return None


def fill(text: str, placeholders: Sequence[Placeholder], values: Mapping[str, Any]) -> str:
    """``text`` with each placeholder replaced by its value; raises :class:`TemplateError`
    naming a dotted path that the value does not have."""
    parts: list[str] = []
    position = 0
    for placeholder in placeholders:
        parts.append(text[position : placeholder.start])
        try:
            parts.append(_text(_lookup(values, placeholder)))
        except (TypeError, ValueError) as exc:  # NaN, or a value JSON cannot hold
            why = f"{placeholder.dotted}: not JSON ({type(exc).__name__})"
            raise TemplateError(f"cannot render {{{{ {placeholder.dotted} }}}}", [why]) from exc
        position = placeholder.end
    parts.append(text[position:])
    return "".join(parts)


def _lookup(values: Mapping[str, Any], placeholder: Placeholder) -> Any:
    value: Any = values[placeholder.variable]
    for depth, key in enumerate(placeholder.path[1:], start=2):
        if not isinstance(value, dict) or key not in value:
            where = ".".join(placeholder.path[:depth])
            message = f"cannot render {{{{ {placeholder.dotted} }}}}"
            raise TemplateError(message, [f"{where}: missing"])
        value = value[key]
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
