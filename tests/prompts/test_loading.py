"""Loading templates: the file format, content-addressed versions, and every load error
named by file and path."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.errors import ConfigError, NotFoundError
from sluice.prompts import PromptSet, load_prompts
from tests.prompts.conftest import WriteTemplates

SUMMARY = """
    # Summarize a ticket for an agent.
    description: One line for the agent's queue.
    model: small
    params: {temperature: 0, max_tokens: 60, stop: ["\\n"]}
    variables:
      ticket: {type: string, max_chars: 2000}
      customer: {type: object}
      tone: {type: string, default: neutral}
    system: You write one-line summaries in a {{ tone }} tone.
    user: "{{ customer.name }} wrote: {{ ticket }}"
    output_schema:
      type: object
      required: [summary]
      properties: {summary: {type: string}}
"""


def problems_of(app: Path) -> list[str]:
    """The problems load_prompts reports for the app."""
    with pytest.raises(ConfigError) as raised:
        load_prompts(app)
    return raised.value.problems


class TestValidFiles:
    def test_a_template_loads_with_every_part(self, write_templates: WriteTemplates) -> None:
        """Messages, variables, model, params and schema come through as written."""
        prompts = load_prompts(write_templates(summary=SUMMARY))
        template = prompts["summary"]
        assert template.name == "summary"
        assert [m.role for m in template.messages] == ["system", "user"]
        assert set(template.variables) == {"ticket", "customer", "tone"}
        assert template.variables["tone"].required is False
        assert template.model == "small"
        assert template.params == {"temperature": 0, "max_tokens": 60, "stop": ["\n"]}
        assert template.output_schema is not None
        assert template.description == "One line for the agent's queue."
        assert template.source == "prompts/summary.yaml"

    def test_get_by_name_or_by_id(self, write_templates: WriteTemplates) -> None:
        """A set finds a template by name and by ``name@version``; a stale version is not
        found."""
        prompts = load_prompts(write_templates(summary=SUMMARY))
        template = prompts["summary"]
        assert prompts.get(template.id) is template
        assert prompts.get("other") is None
        assert "summary" in prompts
        assert template.id in prompts
        assert "other" not in prompts
        assert prompts.ids() == [template.id]
        with pytest.raises(NotFoundError, match="not 000000000000"):
            prompts["summary@000000000000"]
        with pytest.raises(NotFoundError, match="no prompt template 'other'"):
            prompts["other"]

    def test_a_name_key_overrides_the_file_stem(self, write_templates: WriteTemplates) -> None:
        """``name:`` names the template; otherwise the file stem does."""
        text = "name: short\nvariables: {t: string}\nuser: '{{ t }}'\n"
        assert list(load_prompts(write_templates(anything=text))) == ["short"]

    def test_a_messages_list_with_roles(self, write_templates: WriteTemplates) -> None:
        """``messages`` with roles, including an assistant turn, is the long form."""
        app = write_templates(
            few_shot="""
            variables: {q: string}
            messages:
              - {role: system, content: Answer in one word.}
              - {role: user, content: "Is water wet?"}
              - {role: assistant, content: "Yes."}
              - {role: user, content: "{{ q }}"}
            """
        )
        rendered = load_prompts(app)["few_shot"].render({"q": "Is fire cold?"})
        assert [m["role"] for m in rendered.messages] == ["system", "user", "assistant", "user"]
        assert rendered.messages[-1]["content"] == "Is fire cold?"

    def test_an_app_without_prompts_has_none(self, tmp_path: Path) -> None:
        """No ``prompts/`` folder is an empty set, not an error."""
        assert len(load_prompts(tmp_path)) == 0
        assert PromptSet().ids() == []


class TestVersions:
    def test_reformatting_keeps_the_version(self, write_templates: WriteTemplates) -> None:
        """Comments, key order, quoting and the short or long message form do not change the
        version."""
        first = load_prompts(write_templates(summary=SUMMARY))["summary"]
        reformatted = """
            output_schema: {type: object, properties: {summary: {type: "string"}},
                            required: ["summary"]}
            variables:
              tone: {default: neutral, type: string}
              customer: {type: object}   # who wrote
              ticket:
                max_chars: 2000
                type: string
            params:
              stop: ["\\n"]
              max_tokens: 60
              temperature: 0
            model: small
            description: "One line for the agent's queue."
            messages:
              - {role: system, content: "You write one-line summaries in a {{ tone }} tone."}
              - {role: user, content: "{{ customer.name }} wrote: {{ ticket }}"}
        """
        second = load_prompts(write_templates(summary=reformatted))["summary"]
        assert second.version == first.version
        assert second.id == f"summary@{first.version}"

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            ("one-line summaries", "one-sentence summaries"),
            ("max_tokens: 60", "max_tokens: 61"),
            ("max_chars: 2000", "max_chars: 2001"),
            ("default: neutral", "default: friendly"),
            ("model: small", "model: large"),
            ("{summary: {type: string}}", "{summary: {type: string, maxLength: 80}}"),
        ],
    )
    def test_a_change_of_content_makes_a_new_version(
        self, write_templates: WriteTemplates, old: str, new: str
    ) -> None:
        """A word of a message, a parameter, a variable's bound or default, the model or the
        schema: each makes a new version."""
        assert old in SUMMARY
        first = load_prompts(write_templates(summary=SUMMARY))["summary"].version
        second = load_prompts(write_templates(summary=SUMMARY.replace(old, new)))["summary"]
        assert second.version != first
        assert len(second.version) == 12


class TestLoadErrors:
    def test_an_unknown_variable(self, write_templates: WriteTemplates) -> None:
        """A placeholder that names no declared variable is named with its file and message."""
        app = write_templates(bad="variables: {ticket: string}\nuser: '{{ ticket }} {{ tickt }}'\n")
        assert problems_of(app) == [
            "prompts/bad.yaml: user: unknown variable {{ tickt }} (declared: ticket)"
        ]

    def test_an_unknown_variable_in_a_messages_list(self, write_templates: WriteTemplates) -> None:
        """In the long form the problem names the message's index."""
        app = write_templates(
            bad="messages: [{role: system, content: hi}, {role: user, content: '{{ q }}'}]\n"
        )
        assert problems_of(app) == [
            "prompts/bad.yaml: messages[1].content: unknown variable {{ q }} (declared: none)"
        ]

    def test_an_unused_variable(self, write_templates: WriteTemplates) -> None:
        """A declared variable no message uses is an error at its path."""
        app = write_templates(bad="variables: {a: string, b: integer}\nuser: '{{ a }}'\n")
        assert problems_of(app) == [
            "prompts/bad.yaml: variables.b: declared but not used in any message"
        ]

    @pytest.mark.parametrize(
        ("variables", "expected"),
        [
            ("{a: text}", "variables.a.type: must be one of string, integer, number, boolean"),
            ("{a: {type: integer, max_chars: 3}}", "variables.a.max_chars: a positive integer"),
            (
                "{a: {type: integer, default: '3'}}",
                "variables.a.default: expected integer, got string",
            ),
            ("{a: {type: string, required: maybe}}", "variables.a.required: must be true or false"),
            ("{a: {type: string, colour: red}}", "variables.a.colour: unknown key"),
        ],
    )
    def test_a_bad_variable_declaration(
        self, write_templates: WriteTemplates, variables: str, expected: str
    ) -> None:
        """A bad type, bound, default or key is named at the variable's path."""
        app = write_templates(bad=f"variables: {variables}\nuser: '{{{{ a }}}}'\n")
        assert any(p.startswith(f"prompts/bad.yaml: {expected}") for p in problems_of(app))

    def test_a_field_of_a_variable_that_is_not_an_object(
        self, write_templates: WriteTemplates
    ) -> None:
        """``{{ name.field }}`` needs ``name`` to be an object."""
        app = write_templates(bad="variables: {a: string}\nuser: '{{ a.b }}'\n")
        assert problems_of(app) == [
            "prompts/bad.yaml: user: {{ a.b }} reads a field of 'a', which is a string"
        ]

    @pytest.mark.parametrize(
        "text", ["{{ a | upper }}", "{{ a() }}", "{{ a[0] }}", "{{ }}", "{{ a }} and {{ a"]
    )
    def test_anything_but_a_dotted_name_is_refused(
        self, write_templates: WriteTemplates, text: str
    ) -> None:
        """Filters, calls, indexing, empty and unclosed placeholders never load."""
        app = write_templates(bad=f"variables: {{a: string}}\nuser: '{text}'\n")
        problems = problems_of(app)
        assert any(p.startswith("prompts/bad.yaml: user: ") for p in problems), problems

    def test_an_invalid_output_schema(self, write_templates: WriteTemplates) -> None:
        """An output schema that is not valid JSON Schema is named at its path in the schema."""
        app = write_templates(
            bad="""
            variables: {a: string}
            user: "{{ a }}"
            output_schema: {type: object, properties: {reply: {type: strng}}}
            """
        )
        (problem,) = problems_of(app)
        assert problem.startswith("prompts/bad.yaml: output_schema.properties.reply.type: ")

    def test_an_output_schema_that_is_not_an_object(self, write_templates: WriteTemplates) -> None:
        """A step's output is an object, so the schema's root must be one."""
        app = write_templates(
            bad="variables: {a: string}\nuser: '{{ a }}'\noutput_schema: {type: string}\n"
        )
        assert problems_of(app) == [
            "prompts/bad.yaml: output_schema.type: must be 'object' (a step's output is an object)"
        ]

    def test_bad_yaml(self, write_templates: WriteTemplates) -> None:
        """A file that is not YAML is named, and the other files' problems still show."""
        app = write_templates(broken="user: [unclosed\n", other="user: hi\nextra: 1\n")
        problems = problems_of(app)
        assert problems[0].startswith("prompts/broken.yaml: (file): not valid YAML: ")
        assert problems[1].startswith("prompts/other.yaml: extra: unknown key")

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("- just a list", "(file): expected a mapping"),
            ("system: hello", "user: a template needs a 'user' message"),
            ("user: hi\nmessages: []", "messages: give either 'messages' or 'system'/'user'"),
            ("messages: [{role: tool, content: hi}]", "messages[0].role: must be one of"),
            ("user: ''", "user: must be non-empty text"),
            (
                "user: hi\nparams: {temperature: 3}",
                "params.temperature: must be a number from 0 to 2",
            ),
            ("user: hi\nparams: {temprature: 1}", "params.temprature: unknown parameter"),
            ("user: hi\nname: a@b", "name: a non-empty string without '@'"),
        ],
    )
    def test_a_malformed_file(
        self, write_templates: WriteTemplates, text: str, expected: str
    ) -> None:
        """Each structural problem is named at its path."""
        problems = problems_of(write_templates(bad=text))
        assert any(p.startswith(f"prompts/bad.yaml: {expected}") for p in problems), problems

    def test_two_files_with_one_name(self, write_templates: WriteTemplates) -> None:
        """Two files may not claim the same template name."""
        app = write_templates(a="user: hi\n", b="name: a\nuser: hello\n")
        assert problems_of(app) == ["prompts/b.yaml: name: template 'a' is also in prompts/a.yaml"]

    def test_every_problem_of_every_file_at_once(self, write_templates: WriteTemplates) -> None:
        """Problems are collected across files, not stopped at the first."""
        app = write_templates(
            one="variables: {a: string, b: string}\nuser: '{{ c }}'\n", two="user: [x\n"
        )
        problems = problems_of(app)
        assert len(problems) == 4
        assert {p.split(":")[0] for p in problems} == {"prompts/one.yaml", "prompts/two.yaml"}
