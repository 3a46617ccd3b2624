"""The placeholder syntax of prompt templates: ``{{ name }}`` and ``{{ name.field }}``.

Nothing else: no expressions, filters, loops or calls, so a template can never run code and
every value it uses is a declared variable that load time can check. A ``{{`` that does not
open a well-formed placeholder is an error rather than literal text, so a typo is never sent
to a model as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One ``{{ ... }}`` in a message: its span in the text and its dotted path."""

    start: int
    end: int
    path: tuple[str, ...]

    @property
    def variable(self) -> str:
        """The variable the placeholder reads (the first part of its path)."""
        return self.path[0]

    @property
    def dotted(self) -> str:
        """The path as written, ``name.field``."""
        return ".".join(self.path)


def find_placeholders(text: str) -> tuple[list[Placeholder], list[str]]:
    """The placeholders of ``text``, and a reason for each malformed one."""
    found: list[Placeholder] = []
    problems: list[str] = []
    for match in _PLACEHOLDER.finditer(text):
        inner = match.group(1).strip()
        if _PATH.fullmatch(inner):
            found.append(Placeholder(match.start(), match.end(), tuple(inner.split("."))))
        else:
            shown = inner if len(inner) <= 40 else inner[:37] + "..."
            problems.append(
                f"unsupported placeholder {{{{ {shown} }}}}: only {{{{ name }}}} "
                "and {{ name.field }} are allowed"
            )
    rest = _PLACEHOLDER.sub("", text)
    if "{{" in rest:
        problems.append("'{{' without a closing '}}'")
    return found, problems
