"""Prompt templates: files in the app, content-addressed, rendered strictly.

``APP_DIR/prompts/NAME.yaml`` holds one template: ``system`` and ``user`` messages (or a
``messages`` list with roles), ``variables`` with JSON types, an optional ``model`` and
``params``, and an optional ``output_schema`` (JSON Schema). Placeholders are ``{{ name }}``
and ``{{ name.field }}`` only. At load, every placeholder must name a declared variable and
every declared variable must be used; at render, a missing, extra or mistyped variable is a
:class:`TemplateError` naming it. A template's version is a hash of its content, so
``name@version`` names exactly what was sent.
"""

from sluice.prompts.prompt_set import PROMPTS_DIR, PromptSet, load_prompts
from sluice.prompts.render import RenderedPrompt, TemplateError
from sluice.prompts.template import PromptTemplate, parse_template
from sluice.prompts.variables import Variable

__all__ = [
    "PROMPTS_DIR",
    "PromptSet",
    "PromptTemplate",
    "RenderedPrompt",
    "TemplateError",
    "Variable",
    "load_prompts",
    "parse_template",
]
