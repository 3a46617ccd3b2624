"""An app's prompt templates: ``APP_DIR/prompts/*.yaml``, one template a file, loaded at once.

Every problem of every file is collected before anything is refused, each as
``prompts/FILE.yaml: path: reason``, so a user fixes them all in one pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

from sluice.errors import ConfigError, NotFoundError
from sluice.prompts.template import PromptTemplate, parse_template

#: The folder of an app that holds its templates.
PROMPTS_DIR = "prompts"


class PromptSet(Mapping[str, PromptTemplate]):
    """The templates of an app by name: ``prompts["name"]`` or ``prompts["name@version"]``
    (raising :class:`~sluice.errors.NotFoundError` with the known names), or ``get`` (None
    when absent)."""

    def __init__(self, templates: Mapping[str, PromptTemplate] | None = None) -> None:
        self._templates = dict(templates or {})

    def __getitem__(self, key: str) -> PromptTemplate:
        name, _, version = key.partition("@")
        template = self._templates.get(name)
        if template is None:
            known = ", ".join(sorted(self._templates)) or "none"
            raise NotFoundError(f"no prompt template {name!r} (known: {known})")
        if version and version != template.version:
            # Files hold one version each: an id from an older file names content that is gone.
            raise NotFoundError(
                f"prompt template {name!r} is at version {template.version}, not {version}"
            )
        return template

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def get(self, key: str, default: PromptTemplate | None = None) -> PromptTemplate | None:  # type: ignore[override]  # Mapping.get's overloads; this one only takes a template default
        """The template named by ``key`` (``name`` or ``name@version``), else ``default``."""
        try:
            return self[key]
        except NotFoundError:
            return default

    def __iter__(self) -> Iterator[str]:
        return iter(self._templates)

    def __len__(self) -> int:
        return len(self._templates)

    def ids(self) -> list[str]:
        """``name@version`` of every template, sorted."""
        return sorted(template.id for template in self._templates.values())


def load_prompts(app_dir: Path | str) -> PromptSet:
    """The templates in ``app_dir/prompts/*.yaml`` (none when the folder is absent).

    Raises :class:`~sluice.errors.ConfigError` listing every problem of every file.
    """
    folder = Path(app_dir) / PROMPTS_DIR
    if not folder.is_dir():
        return PromptSet()
    templates: dict[str, PromptTemplate] = {}
    problems: list[str] = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        shown = f"{PROMPTS_DIR}/{path.name}"
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            reason = _reason(exc)
            problems.append(f"{shown}: (file): not valid YAML: {reason}")
            continue
        template, found = parse_template(raw, path.stem, source=shown)
        problems.extend(f"{shown}: {problem}" for problem in found)
        if template is None:
            continue
        if template.name in templates:
            other = templates[template.name].source
            problems.append(f"{shown}: name: template {template.name!r} is also in {other}")
            continue
        templates[template.name] = template
    if problems:
        raise ConfigError(f"{folder}: invalid prompt templates", problems)
    return PromptSet(templates)


def _reason(exc: Exception) -> str:
    """A YAML error in one line: where and what, without the snippet PyYAML quotes."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return " ".join(str(exc).split())
