"""The ``generate`` built-in step: a prompt template rendered with fields of the event, sent to
a model, answered with text or with a JSON object that fits the template's output schema.

Workflow use::

    - name: draft
      pool: inference
      uses: generate
      options:
        template: draft_reply             # prompts/draft_reply.yaml (or draft_reply@VERSION,
                                          # read from the store when the files lack it)
        model: [large, backup]            # optional (default: the template's); tried in order
        inputs: {ticket: text, intent: intent, kb_reply: kb.reply}   # variable: data path
        params: {max_tokens: 200}         # optional overrides of the template's params
        cache: true                       # optional; default: on only at temperature 0
        tools: [triage_tools:card_status] # optional; see sluice.steps.tools
        max_repairs: 1                    # re-asks after an answer that misses the schema
        max_tool_rounds: 3                # tool-call rounds before the step fails
        degrade_to: small                 # optional: the model a degrade budget falls back to

The result goes into the data under the step's name: ``{"text": ...}``, or the object the
schema describes. Without ``inputs`` each template variable is read from the data field of its
name. Every call goes through the app's machinery: the model's breaker and the retry budget
(listed models are fallbacks: a failing or open one passes to the next), the event's deadline,
the spend budgets (held before the call at its estimate, settled after; ``refuse`` fails the
step, ``degrade`` takes ``degrade_to`` or, without it, ends the step with ``degraded: spend``
and no result, so a later step can take a local path), the cost ledger and the model metrics
(:mod:`sluice.models.metered`), and a model span carrying ``sluice.prompt.template``
(``name@version``).

An answer that is not JSON or misses the schema is sent back once (``max_repairs``) with the
problems appended; still wrong, the step fails, not retried, with the problems (paths and
rules, never values): the event is dead-lettered and replayable. Tool calls are validated
against their schema, run, traced (a ``tool NAME`` span) and logged with masked arguments.

A custom step does the same through ``ctx.service("generate")``::

    gen = ctx.service("generate")
    outcome = await gen("draft_reply", {"ticket": data["text"], ...}, model="large")
    return {**data, "draft": outcome.value}
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import orjson

from sluice.errors import StepError
from sluice.governance.templates import resolve_template
from sluice.guard.pii import PiiMasker
from sluice.models.base import Model, ModelRequest, ModelResult
from sluice.models.metered import MeteredModel
from sluice.prompts import PromptSet, PromptTemplate, RenderedPrompt, TemplateError
from sluice.steps.tools import Tool, resolve_tool
from sluice.telemetry.tracing import span
from sluice.workflow.context import StepContext
from sluice.workflow.input_errors import schema_problems
from sluice.workflow.model import JSONObject

if TYPE_CHECKING:
    from sluice.workflow.context import StepBound  # noqa: F401 - the protocol served

DEFAULT_MAX_REPAIRS = 1
DEFAULT_MAX_TOOL_ROUNDS = 3
_MAX_PROBLEMS = 10
_REPAIR = (
    "Your answer does not match the required JSON Schema:\n{problems}\n"
    "Answer again with only a JSON object that matches the schema."
)
_masker = PiiMasker()


@dataclass(frozen=True, slots=True)
class Generated:
    """What one generation produced.

    ``value`` is ``{"text": ...}`` or the validated object (None when ``degraded``); ``calls``
    are the model calls made (repairs and tool rounds included), each in the cost ledger.
    """

    value: dict[str, Any] | None
    template: str
    model: str | None
    calls: list[ModelResult] = field(default_factory=list)
    repairs: int = 0
    tool_calls: int = 0
    degraded: str | None = None

    @property
    def cost(self) -> float:
        """The cost of every call made."""
        return sum(call.cost for call in self.calls)


class Generation:
    """The ``generate`` service: the app's prompt templates, and a call of them for each step
    (``ctx.service("generate")`` is a :class:`StepGeneration`)."""

    def __init__(self, prompts: PromptSet, search_path: Path | None = None) -> None:
        self.prompts = prompts
        self._search_path = search_path
        self._tools: dict[str, Tool] = {}

    def for_step(self, ctx: StepContext) -> StepGeneration:
        """Generation on behalf of the step ``ctx`` runs: budgeted, ledgered, traced."""
        return StepGeneration(ctx, self)

    def tool(self, spec: Any) -> Tool:
        """The tool ``spec`` names, resolved once."""
        key = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS, default=str).decode()
        found = self._tools.get(key)
        if found is None:
            found, problems = resolve_tool(spec, self._search_path)
            if found is None:
                raise StepError(f"tool {spec!r}: {'; '.join(problems)}", retryable=False)
            self._tools[key] = found
        return found


class StepGeneration:
    """Renders a template and asks a model for one step of one event."""

    def __init__(self, ctx: StepContext, service: Generation) -> None:
        self._ctx = ctx
        self._service = service

    async def __call__(
        self,
        template: str,
        values: Mapping[str, Any],
        *,
        model: str | Sequence[str] | None = None,
        params: Mapping[str, Any] | None = None,
        cache: bool | None = None,
        tools: Sequence[Any] = (),
        max_repairs: int = DEFAULT_MAX_REPAIRS,
        max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
        degrade_to: str | None = None,
    ) -> Generated:
        """Render ``template`` with ``values`` strictly, ask the first listed model that
        answers, repair or run tools as needed; see the module docstring."""
        ctx = self._ctx
        found = await resolve_template(self._service.prompts, ctx.services.get("templates"),
                                       template)  # fmt: skip
        if found is None:
            raise StepError(f"step {ctx.step!r}: no prompt template {template!r}", retryable=False)
        rendered = found.render(values)
        names = _model_names(model, found)
        if not names:
            raise StepError(
                f"step {ctx.step!r}: template {found.id} names no model; set options.model",
                retryable=False,
            )
        merged = {**rendered.params, **(params or {})}
        cached = cache if cache is not None else _temperature(merged) == 0
        declared = [self._service.tool(spec) for spec in tools]
        call = _Call(ctx, rendered, names, merged, cached, declared, degrade_to)
        return await call.run(max_repairs, max_tool_rounds)


class _Call:
    """One generation: the conversation so far and the calls made."""

    def __init__(
        self,
        ctx: StepContext,
        rendered: RenderedPrompt,
        names: Sequence[str],
        params: Mapping[str, Any],
        cached: bool,
        tools: Sequence[Tool],
        degrade_to: str | None,
    ) -> None:
        self.ctx = ctx
        self.rendered = rendered
        self.names = list(names)
        self.params = dict(params)
        self.cached = cached
        self.tools = {tool.name: tool for tool in tools}
        self.degrade_to = degrade_to
        self.messages: list[dict[str, Any]] = [dict(m) for m in rendered.messages]
        self.calls: list[ModelResult] = []

    def _outcome(self, value: dict[str, Any] | None, repairs: int, tool_calls: int,
                 degraded: str | None = None) -> Generated:  # fmt: skip
        model = self.calls[-1].model if self.calls else None
        return Generated(value, self.rendered.template_id, model, self.calls, repairs,
                         tool_calls, degraded)  # fmt: skip

    async def run(self, max_repairs: int, max_tool_rounds: int) -> Generated:
        repairs = rounds = tool_calls = 0
        schema = self.rendered.output_schema
        while True:
            result = await self._ask()
            if result is None:
                return self._outcome(None, repairs, tool_calls, "spend")
            self.calls.append(result)
            text = str(result.output.get("text") or "")
            asked = list(result.output.get("tool_calls") or [])
            if asked:
                rounds += 1
                if rounds > max_tool_rounds:
                    raise StepError(
                        f"step {self.ctx.step!r}: the model still asked for tools after"
                        f" {max_tool_rounds} rounds (max_tool_rounds) with template"
                        f" {self.rendered.template_id}",
                        retryable=False,
                    )
                self.messages.append({"role": "assistant", "content": text or None,
                                      "tool_calls": asked})  # fmt: skip
                for request in asked:
                    tool_calls += 1
                    self.messages.append(await self._run_tool(request, rounds))
                continue
            if schema is None:
                return self._outcome({"text": text}, repairs, tool_calls)
            value, problems = _check(text, schema)
            if value is not None:
                return self._outcome(value, repairs, tool_calls)
            if repairs >= max_repairs:
                raise StepError(
                    f"step {self.ctx.step!r}: the model's answer does not match the output"
                    f" schema of {self.rendered.template_id} after {repairs} repair(s):\n  "
                    + "\n  ".join(problems),
                    retryable=False,
                )
            repairs += 1
            self.messages.append({"role": "assistant", "content": text})
            listed = "\n".join(f"- {p}" for p in problems)
            self.messages.append({"role": "user", "content": _REPAIR.format(problems=listed)})

    def _request(self) -> ModelRequest:
        return ModelRequest(
            text=self.rendered.messages[-1]["content"] if self.rendered.messages else "",
            params=self.params,
            messages=tuple(self.messages),
            output_schema=self.rendered.output_schema,
            tools=tuple(tool.declaration() for tool in self.tools.values()),
            template=self.rendered.template_id,
        )

    async def _ask(self) -> ModelResult | None:
        """The first listed model's answer that comes; None when a degrade budget holds none
        and no ``degrade_to`` model is declared."""
        ctx = self.ctx
        request = self._request()
        models: Mapping[str, Model] = ctx.services.get("models") or {}
        last: StepError | None = None
        for index, name in enumerate(self.names):
            metered = MeteredModel(ctx, self._model(name), models)
            try:
                result = await metered.try_predict(request)
            except StepError as exc:
                if not exc.retryable or index == len(self.names) - 1:
                    raise
                last = exc  # the next listed model (another provider) answers instead
                ctx.logger.warning("generate: model %s failed, trying %s: %s", name,
                                   self.names[index + 1], exc)  # fmt: skip
                continue
            if result is not None:
                return result
            if self.degrade_to is None:
                return None
            fallback = MeteredModel(ctx, self._model(self.degrade_to), models)
            answered = await fallback.try_predict(request)
            if answered is None:
                raise StepError(
                    f"step {ctx.step!r}: neither {name!r} nor its degrade_to"
                    f" {self.degrade_to!r} fits the spend budgets",
                    retryable=False,
                )
            return answered
        raise last or StepError(f"step {ctx.step!r}: no model to ask", retryable=False)

    def _model(self, name: str) -> Model:
        cascades = self.ctx.services.get("cascades")
        guarded = getattr(cascades, "guarded", None)
        if callable(guarded):  # behind its breaker and the retry budget
            model: Model = guarded(name, cached=self.cached)
            return model
        models: Mapping[str, Model] = self.ctx.services.get("models") or {}
        if name not in models:
            raise StepError(f"step {self.ctx.step!r}: no model {name!r}", retryable=False)
        found = models[name]
        inner = getattr(found, "model", None)
        if not self.cached and getattr(found, "cache", None) is not None and inner is not None:
            return inner  # type: ignore[no-any-return]  # a CachedModel's own model
        return found

    async def _run_tool(self, request: Mapping[str, Any], round_: int) -> dict[str, Any]:
        """Run one requested tool call; the tool message that answers it."""
        function = request.get("function") or {}
        name = str(function.get("name", ""))
        call_id = str(request.get("id", ""))
        raw = function.get("arguments") or "{}"
        ctx = self.ctx
        tool = self.tools.get(name)
        attributes: dict[str, str | int] = {"sluice.tool.name": name, "sluice.tool.round": round_,
                      "sluice.prompt.template": self.rendered.template_id}  # fmt: skip
        with span(f"tool {name}", attributes) as current:
            masked = _masker.mask(raw if isinstance(raw, str) else str(raw)).masked
            ctx.logger.info("tool call %s(%s)", name, masked, extra={"event_id": ctx.event_id})
            content: dict[str, Any]
            if tool is None:
                content = {"error": f"no tool {name!r} (tools: {', '.join(self.tools)})"}
            else:
                try:
                    arguments = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    arguments = None
                problems = (
                    ["(root): arguments are not JSON"] if arguments is None
                    else tool.problems(arguments)
                )  # fmt: skip
                if problems:
                    content = {"error": "invalid arguments", "problems": problems}
                else:
                    started = time.perf_counter()
                    content = {"result": await tool.call(ctx, arguments)}
                    if current is not None:
                        elapsed = (time.perf_counter() - started) * 1000
                        current.set_attribute("sluice.tool.ms", round(elapsed, 3))
            if current is not None and "error" in content:
                current.set_attribute("sluice.tool.error", str(content["error"]))
        text = orjson.dumps(content, default=str).decode()
        return {"role": "tool", "tool_call_id": call_id, "content": text}


def _check(text: str, schema: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The answer parsed and valid, or the problems (paths and rules, never values)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None, ["(root): the answer is not JSON"]
    problems = schema_problems(_validator(orjson.dumps(schema)).iter_errors(value), _MAX_PROBLEMS)
    if problems:
        return None, problems
    if not isinstance(value, dict):
        return None, ["(root): the answer is not a JSON object"]
    return value, []


@functools.lru_cache(maxsize=64)
def _validator(schema: bytes) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(orjson.loads(schema))


def _temperature(params: Mapping[str, Any]) -> float:
    value = params.get("temperature", 0)
    return float(value) if isinstance(value, int | float) else 0.0


def _model_names(model: str | Sequence[str] | None, template: PromptTemplate) -> list[str]:
    if model is None:
        return [template.model] if template.model else []
    return [model] if isinstance(model, str) else [str(m) for m in model]


def _lookup(data: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def template_values(
    ctx: StepContext, template: PromptTemplate, data: Mapping[str, Any]
) -> dict[str, Any]:
    """The template's variables from the data: ``options.inputs`` (variable: data path), else
    each variable from the field of its name. A path missing from the data is a
    :class:`TemplateError` naming the variable and the path."""
    inputs: Mapping[str, Any] | None = ctx.options.get("inputs")
    if inputs is None:
        return {name: data[name] for name in template.variables if name in data}
    values: dict[str, Any] = {}
    missing: list[str] = []
    for variable, path in inputs.items():
        present, value = _lookup(data, str(path))
        if present:
            values[str(variable)] = value
        elif template.variables[str(variable)].required:
            missing.append(f"{variable}: data.{path} is missing")
    if missing:
        raise TemplateError(f"cannot render {template.id} for step {ctx.step!r}", missing)
    return values


async def generate(ctx: StepContext, data: JSONObject) -> JSONObject:
    """Render ``options.template`` with the data and put the model's answer under the step's
    name (module docstring)."""
    service: Generation | None = ctx.services.get("generate")
    if service is None:
        raise StepError(f"step {ctx.step!r}: the app has no prompts/ folder", retryable=False)
    options = ctx.options
    template = await resolve_template(service.prompts, ctx.services.get("templates"),
                                      str(options.get("template")))  # fmt: skip
    if template is None:
        raise StepError(f"step {ctx.step!r}: no prompt template {options.get('template')!r}",
                        retryable=False)  # fmt: skip
    outcome = await service.for_step(ctx)(
        str(options["template"]),
        template_values(ctx, template, data),
        model=options.get("model"),
        params=options.get("params"),
        cache=options.get("cache"),
        tools=options.get("tools") or (),
        max_repairs=int(options.get("max_repairs", DEFAULT_MAX_REPAIRS)),
        max_tool_rounds=int(options.get("max_tool_rounds", DEFAULT_MAX_TOOL_ROUNDS)),
        degrade_to=options.get("degrade_to"),
    )
    if outcome.degraded is not None:
        return {**data, ctx.step: None, "degraded": outcome.degraded}
    return {**data, ctx.step: outcome.value}
