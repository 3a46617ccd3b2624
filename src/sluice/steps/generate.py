"""The ``generate`` built-in step: a prompt template rendered with fields of the event, sent to
a model, answered with text or with a JSON object that fits the template's output schema.

Workflow use::

    - name: draft
      pool: inference
      uses: generate
      options:
        template: draft_reply             # prompts/draft_reply.yaml (or draft_reply@VERSION,
                                          # read from the store when the files lack it)
        model: [large, backup]            # optional (default: the template's); tried in order,
                                          # or a group of the model_groups: section
        inputs:                           # variable: data path, or a lookup in an app file
          ticket: text
          intent: intent
          kb_reply: {file: kb/templates.yaml, key: intent, default: "An agent will answer."}
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

With ``fallback``, that app function answers (in the output schema's shape) when no model
does: the models are only empty groups, a degrade budget holds no call, every model failed
retryably, or the workflow's SLO guard degrades. While a caller waits on the run with
``Accept: text/event-stream``, the text is streamed to it as the model writes it
(:mod:`sluice.steps.generate_stream`).

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
import inspect
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
from sluice.models.chat_model import TEXT_SINK
from sluice.models.metered import MeteredModel
from sluice.models.prices import money
from sluice.prompts import PromptSet, PromptTemplate, RenderedPrompt, TemplateError
from sluice.steps.generate_stream import StepTextSink, TextStreams
from sluice.steps.tools import Tool, resolve_function, resolve_tool
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
#: Why a generation has no model answer (``Generated.degraded``): a degrade budget held no
#: call; the model names only empty groups (no model configured); every model failed.
#: And the workflow's SLO guard degrades: a step with a fallback takes it without a call.
SPEND, NO_MODEL, ERROR, SLO = "spend", "no_model", "error", "slo"


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

    def __init__(
        self,
        prompts: PromptSet,
        search_path: Path | None = None,
        groups: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.prompts = prompts
        self.groups: Mapping[str, tuple[str, ...]] = {
            name: tuple(models) for name, models in (groups or {}).items()
        }
        self._search_path = search_path
        self._tools: dict[str, Tool] = {}
        self._functions: dict[str, Any] = {}
        #: Callers waiting on runs, for the text of their generations as it is produced.
        self.streams = TextStreams()

    def models(self, model: str | Sequence[str]) -> list[str]:
        """The models ``model`` names, in the order they are tried: each name a model, or a
        group of the ``model_groups:`` section standing for its models."""
        names = [model] if isinstance(model, str) else [str(m) for m in model]
        expanded: list[str] = []
        for name in names:
            for found in self.groups.get(name, (name,)):
                if found not in expanded:
                    expanded.append(found)
        return expanded

    def function(self, ref: str) -> Any:
        """The app function ``module:function`` names (a step's fallback), resolved once."""
        found = self._functions.get(ref)
        if found is None:
            found, problems = resolve_function(ref, self._search_path)
            if found is None:
                raise StepError(f"fallback {ref!r}: {'; '.join(problems)}", retryable=False)
            self._functions[ref] = found
        return found

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
        asked = model if model is not None else found.model
        if asked is None:
            raise StepError(
                f"step {ctx.step!r}: template {found.id} names no model; set options.model",
                retryable=False,
            )
        names = self._service.models(asked)
        if not names:  # only empty groups: no model is configured for this path
            return Generated(None, rendered.template_id, None, degraded=NO_MODEL)
        merged = {**rendered.params, **(params or {})}
        cached = cache if cache is not None else _temperature(merged) == 0
        declared = [self._service.tool(spec) for spec in tools]
        call = _Call(ctx, rendered, names, merged, cached, declared, degrade_to)
        streams = self._service.streams
        if not declared and streams.listening(ctx.event_id):  # a caller waits for the text
            call.sink = StepTextSink(streams, ctx.event_id, ctx.step)
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
        self.sink: StepTextSink | None = None

    def _outcome(self, value: dict[str, Any] | None, repairs: int, tool_calls: int,
                 degraded: str | None = None) -> Generated:  # fmt: skip
        model = self.calls[-1].model if self.calls else None
        return Generated(value, self.rendered.template_id, model, self.calls, repairs,
                         tool_calls, degraded)  # fmt: skip

    async def run(self, max_repairs: int, max_tool_rounds: int) -> Generated:
        repairs = rounds = tool_calls = 0
        schema = self.rendered.output_schema
        while True:
            result = await self._streamed() if self.sink is not None else await self._ask()
            if result is None:
                return self._outcome(None, repairs, tool_calls, SPEND)
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

    async def _streamed(self) -> ModelResult | None:
        """:meth:`_ask`, its text published as it comes; an answer that came whole (from the
        cache, or a model that does not stream) is published whole."""
        sink = self.sink
        assert sink is not None
        token = TEXT_SINK.set(sink)
        try:
            result = await self._ask()
        finally:
            TEXT_SINK.reset(token)
        text = str(result.output.get("text") or "") if result is not None else ""
        if text and not sink.written:
            sink.begin()
            sink.write(text)
        sink.written = False  # the next call (a repair) starts its own text
        return result

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
    """The template's variables from the data: ``options.inputs`` (variable: data path, or a
    lookup ``{file, key, default}``), else each variable from the field of its name. A path
    missing from the data, or a lookup finding nothing and having no default, is a
    :class:`TemplateError` naming the variable and the path."""
    inputs: Mapping[str, Any] | None = ctx.options.get("inputs")
    if inputs is None:
        return {name: data[name] for name in template.variables if name in data}
    values: dict[str, Any] = {}
    missing: list[str] = []
    for variable, source in inputs.items():
        if isinstance(source, Mapping):
            present, value, why = _looked_up(ctx, source, data)
        else:
            present, value = _lookup(data, str(source))
            why = f"data.{source} is missing"
        if present:
            values[str(variable)] = value
        elif template.variables[str(variable)].required:
            missing.append(f"{variable}: {why}")
    if missing:
        raise TemplateError(f"cannot render {template.id} for step {ctx.step!r}", missing)
    return values


def _looked_up(
    ctx: StepContext, lookup: Mapping[str, Any], data: Mapping[str, Any]
) -> tuple[bool, Any, str]:
    """A lookup input: the entry of the app file ``lookup.file`` (a YAML mapping, read once
    by the ``files`` service) named by the value at the data path ``lookup.key``; its
    ``default`` when there is no such entry. (present, value, why not)."""
    name, path = str(lookup["file"]), str(lookup["key"])
    present, key = _lookup(data, path)
    if present and isinstance(key, str | int):
        files = ctx.service("files")
        table: Mapping[Any, Any] = files.yaml(name)
        if key in table:
            return True, table[key], ""
    if "default" in lookup:
        return True, lookup["default"], ""
    if not present:
        return False, None, f"data.{path} is missing"
    return False, None, f"{name} has no entry for data.{path}"


async def generate(ctx: StepContext, data: JSONObject) -> JSONObject:
    """Render ``options.template`` with the data and put the model's answer under the step's
    name (module docstring); with ``options.fallback``, that function's answer when no model
    gives one."""
    service: Generation | None = ctx.services.get("generate")
    if service is None:
        raise StepError(f"step {ctx.step!r}: the app has no prompts/ folder", retryable=False)
    options = ctx.options
    template = await resolve_template(service.prompts, ctx.services.get("templates"),
                                      str(options.get("template")))  # fmt: skip
    if template is None:
        raise StepError(f"step {ctx.step!r}: no prompt template {options.get('template')!r}",
                        retryable=False)  # fmt: skip
    values = template_values(ctx, template, data)
    fallback = options.get("fallback")
    asked = options.get("model", template.model)
    configured = asked is not None and bool(service.models(asked))  # not only empty groups
    if fallback is not None and configured and _slo_degraded(ctx):
        # The guard's degrade policy: the declared cheap path while the SLO has slipped, as a
        # cascade keeps its cheap tier's answer; a model call here is the slow part.
        value = await _fallback(ctx, service, str(fallback), template, data, values)
        outcome = Generated(None, template.id, None, degraded=SLO)
        return {**data, ctx.step: value,
                "generated": _provenance(data, ctx.step, outcome, str(fallback))}  # fmt: skip
    try:
        outcome = await service.for_step(ctx)(
            str(options["template"]),
            values,
            model=options.get("model"),
            params=options.get("params"),
            cache=options.get("cache"),
            tools=options.get("tools") or (),
            max_repairs=int(options.get("max_repairs", DEFAULT_MAX_REPAIRS)),
            max_tool_rounds=int(options.get("max_tool_rounds", DEFAULT_MAX_TOOL_ROUNDS)),
            degrade_to=options.get("degrade_to"),
        )
    except StepError as exc:
        if fallback is None or not exc.retryable:  # a template or schema problem: replayable
            raise
        ctx.logger.warning("generate: no model answered step %s, fallback instead: %s",
                           ctx.step, exc)  # fmt: skip
        outcome = Generated(None, template.id, None, degraded=ERROR)
    if outcome.degraded is None:
        return {**data, ctx.step: outcome.value,
                "generated": _provenance(data, ctx.step, outcome)}  # fmt: skip
    if fallback is None:  # a later step can take a local path
        return {**data, ctx.step: None, "degraded": outcome.degraded,
                "generated": _provenance(data, ctx.step, outcome)}  # fmt: skip
    value = await _fallback(ctx, service, str(fallback), template, data, values)
    return {**data, ctx.step: value,
            "generated": _provenance(data, ctx.step, outcome, str(fallback))}  # fmt: skip


def _slo_degraded(ctx: StepContext) -> bool:
    """Whether the workflow's SLO guard degrades now (policy ``degrade``, the SLO slipped)."""
    guards = ctx.services.get("slo_guards")
    degraded = getattr(guards, "degraded", None)
    return callable(degraded) and bool(degraded(ctx.workflow))


async def _fallback(
    ctx: StepContext,
    service: Generation,
    ref: str,
    template: PromptTemplate,
    data: Mapping[str, Any],
    values: Mapping[str, Any],
) -> Any:
    """The fallback's answer for the event, held to the template's output schema like a
    model's (a mismatch is the app's bug: the step fails, not retried)."""
    function = service.function(ref)
    answer = function(ctx, data, values)
    if inspect.isawaitable(answer):
        answer = await answer
    schema = template.output_schema
    if schema is None:
        return answer
    problems = schema_problems(_validator(orjson.dumps(schema)).iter_errors(answer), _MAX_PROBLEMS)
    if problems:
        raise StepError(
            f"step {ctx.step!r}: fallback {ref} answered outside the output schema of"
            f" {template.id}:\n  " + "\n  ".join(problems),
            retryable=False,
        )
    return answer


def _provenance(
    data: Mapping[str, Any], step: str, outcome: Generated, fallback: str | None = None
) -> dict[str, Any]:
    """``generated`` with this step's entry: how its answer was made (``degraded``: why no
    model answered; ``fallback``: the function that answered instead)."""
    entry: dict[str, Any] = {
        "template": outcome.template,
        "model": outcome.model,
        "calls": len(outcome.calls),
        "repairs": outcome.repairs,
        "cost": money(outcome.cost),
    }
    if outcome.degraded is not None:
        entry["degraded"] = outcome.degraded
    if fallback is not None:
        entry["fallback"] = fallback
    earlier = data.get("generated")
    return {**(earlier if isinstance(earlier, Mapping) else {}), step: entry}
