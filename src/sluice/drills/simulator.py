"""A model simulator: an OpenAI-compatible server for load tests and chaos drills.

It answers ``POST /v1/chat/completions`` and ``GET /v1/models`` like a provider would, with
answers from a real local model (any :class:`~sluice.models.base.Model`; its label and
confidence become the JSON content), and misbehaves on purpose:

- latency drawn from a log-normal distribution fitted to a p50 and a p95 (``p50_ms=0``: instant);
- a share of 500s (``error_rate``), of 429s with ``Retry-After`` (``throttle_rate``) and of
  answers that break the requested schema (``invalid_rate``);
- 429 beyond ``max_concurrency`` requests in flight, as a saturated provider does;
- 401 without ``Authorization: Bearer <api_key>`` when an ``api_key`` is set.

With ``mode="generate"`` it also plays a generative model (:mod:`.simulator_generator`): a
request that is not a classification (no label enum in its ``response_format``) gets
deterministic text derived from its messages, or with a ``json_schema`` response format a JSON
value generated from the schema (``invalid_rate`` of them do not validate, to exercise
repair), or with ``tools`` and no tool result yet in the messages a ``tool_calls`` answer
(``tool_call_rate`` of them; always with ``tool_choice: required`` or a named function, never
with ``none``). Classification requests are answered by the model in both modes, and latency,
errors and 429s apply to every request alike. The default, ``mode="classify"``, answers every
request with the model's label, as a classifier endpoint does.

``stream: true`` answers with server-sent events as OpenAI does: a ``chat.completion.chunk``
with the role, the content a few characters a chunk (``stream_chunk_ms`` apart), one with the
``finish_reason``, a usage chunk when ``stream_options.include_usage`` asks for it, then
``data: [DONE]``. ``streams_open`` and ``streams_cancelled`` in the stats let a test see that a
caller who went away really ended the stream.

It never passes for a real provider: every response carries ``x-sluice-simulator: 1`` and
completions say ``system_fingerprint: "sluice-simulator"``. Delayed answers state the delay in
``x-sluice-latency-ms``, so a drill can tell simulated latency from its own overhead.
``GET /sim/stats`` returns the counters a drill checks (requests, 429s, errors, highest
concurrency); ``POST /sim/reset`` zeroes them. Usage tokens are estimated at four characters a
token; ``answer_padding`` pads answers with whitespace, so the tokens (and the bill) grow while
the answers stay the same.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from sluice.drills.simulator_generator import (
    break_instance,
    instance,
    request_seed,
    sentences,
    text_answer,
    tool_call,
)
from sluice.errors import ConfigError
from sluice.models.base import Model, ModelRequest, ModelResult

FINGERPRINT = "sluice-simulator"
_Z95 = statistics.NormalDist().inv_cdf(0.95)
_CHARS_PER_TOKEN = 4
#: ``classify``: every request gets the model's label; ``generate``: only requests with a label
#: enum do, the others get generated text, JSON or tool calls.
MODES = ("classify", "generate")


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    """How the simulator behaves; rates are probabilities per request (0..1)."""

    p50_ms: float = 0.0
    p95_ms: float = 0.0
    max_latency_ms: float = 60_000.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    invalid_rate: float = 0.0
    retry_after_s: float = 1.0
    max_concurrency: int = 0
    stream_chunk_ms: float = 0.0
    answer_cache_size: int = 4096
    #: Whitespace appended to each answer, as a multiple of its length (2.0 triples the output
    #: tokens, answers still parse): a model that starts rambling, for cost-spike drills.
    answer_padding: float = 0.0
    mode: str = "classify"
    #: In ``generate`` mode, the share of requests with ``tools`` (and no tool result yet)
    #: answered with a tool call.
    tool_call_rate: float = 0.0
    api_key: str | None = None
    seed: int | None = None

    def problems(self) -> list[str]:
        """Every problem with these settings, each prefixed with the field name."""
        problems = []
        if self.p50_ms < 0 or (self.p50_ms > 0 and self.p95_ms < self.p50_ms):
            problems.append("p95_ms: must be at least p50_ms, and p50_ms at least 0")
        if self.mode not in MODES:
            problems.append(f"mode: must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("error_rate", "throttle_rate", "invalid_rate", "tool_call_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name}: must be between 0 and 1")
        if self.error_rate + self.throttle_rate > 1.0:
            problems.append("error_rate + throttle_rate: must not exceed 1")
        if min(self.retry_after_s, self.max_concurrency, self.answer_cache_size) < 0:
            problems.append("retry_after_s, max_concurrency, answer_cache_size: must be >= 0")
        if self.stream_chunk_ms < 0:
            problems.append("stream_chunk_ms: must be >= 0")
        if not 0.0 <= self.answer_padding <= 100.0:
            problems.append("answer_padding: must be between 0 and 100")
        return problems


class LatencyDistribution:
    """Log-normal latency with the given median and 95th percentile, capped at ``max_ms``.

    ``ln(latency)`` is normal with mean ``ln(p50)`` and standard deviation
    ``(ln(p95) - ln(p50)) / z(0.95)``; ``p50_ms=0`` means no delay at all.
    """

    def __init__(self, p50_ms: float, p95_ms: float, max_ms: float = 60_000.0) -> None:
        self.instant = p50_ms <= 0
        self.mu = math.log(p50_ms) if not self.instant else 0.0
        self.sigma = (math.log(p95_ms) - self.mu) / _Z95 if not self.instant else 0.0
        self.max_ms = max_ms

    def quantile_ms(self, q: float) -> float:
        """The latency below which a share ``q`` of samples fall (before the cap)."""
        if self.instant:
            return 0.0
        return math.exp(self.mu + self.sigma * statistics.NormalDist().inv_cdf(q))

    def sample_ms(self, rng: random.Random) -> float:
        """One latency in milliseconds."""
        if self.instant:
            return 0.0
        return min(self.max_ms, rng.lognormvariate(self.mu, self.sigma))


@dataclass(slots=True)
class SimulatorStats:
    """Counters since start or the last reset; ``throttled`` counts every 429."""

    requests: int = 0
    ok: int = 0
    throttled: int = 0
    over_capacity: int = 0
    errors: int = 0
    invalid: int = 0
    bad_requests: int = 0
    in_flight: int = 0
    max_concurrent: int = 0
    streams_open: int = 0
    streams_cancelled: int = 0
    generated: int = 0
    tool_calls: int = 0


class ModelSimulator:
    """The simulator as an ASGI application; :mod:`sluice.drills.simulator_server` serves it."""

    def __init__(self, model: Model, settings: SimulatorSettings | None = None) -> None:
        settings = settings or SimulatorSettings()
        problems = settings.problems()
        if problems:
            raise ConfigError("invalid simulator settings", problems)
        self.model = model
        self.settings = settings
        self.latency = LatencyDistribution(
            settings.p50_ms, settings.p95_ms, settings.max_latency_ms
        )
        self.stats = SimulatorStats()
        self._rng = random.Random(settings.seed)
        self._answers: dict[tuple[str, tuple[str, ...] | None], ModelResult] = {}
        self._app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._complete, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/sim/stats", self._stats, methods=["GET"]),
                Route("/sim/reset", self._reset, methods=["POST"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection, marking every response as simulated."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-sluice-simulator", b"1")]
            await send(message)

        await self._app(scope, receive, marked)

    async def _complete(self, request: Request) -> Response:
        stats, settings = self.stats, self.settings
        stats.requests += 1
        if not self._authorized(request):
            stats.bad_requests += 1
            return _error(401, "invalid_request_error", "missing or wrong API key")
        if settings.max_concurrency and stats.in_flight >= settings.max_concurrency:
            stats.throttled += 1
            stats.over_capacity += 1
            return self._throttle("too many concurrent requests")
        stats.in_flight += 1
        stats.max_concurrent = max(stats.max_concurrent, stats.in_flight)
        try:
            return await self._answer(request)
        finally:
            stats.in_flight -= 1

    async def _answer(self, request: Request) -> Response:
        stats, settings = self.stats, self.settings
        try:
            body = orjson.loads(await request.body())
            text, labels = _question(body)
        except (orjson.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
            stats.bad_requests += 1
            return _error(400, "invalid_request_error", f"invalid request: {exc}")
        roll = self._rng.random()
        if roll < settings.throttle_rate:
            stats.throttled += 1
            return self._throttle("simulated rate limit")
        delay_ms = self.latency.sample_ms(self._rng)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000.0)
        delay = {"x-sluice-latency-ms": f"{delay_ms:.1f}"}
        if roll < settings.throttle_rate + settings.error_rate:
            stats.errors += 1
            return _error(500, "server_error", "simulated server error", delay)
        model = body.get("model") or self.model.name
        if settings.mode == "generate" and labels is None:
            try:
                generated = self._generate(body, model)
            except Exception as exc:  # noqa: BLE001 - a schema it cannot fill is the provider's 500
                stats.errors += 1
                return _error(500, "server_error", f"generation failed: {type(exc).__name__}")
            return self._respond(body, generated, delay)
        try:
            result = await self._predict(text, labels)
        except Exception as exc:  # noqa: BLE001 - any model failure is the provider's 500
            stats.errors += 1
            return _error(500, "server_error", f"model failed: {type(exc).__name__}")
        answer: dict[str, Any] = {"label": result.label, "confidence": round(result.confidence, 4)}
        if self._rng.random() < settings.invalid_rate:
            stats.invalid += 1
            answer["confidence"] = "high"  # the schema asks for a number: a typical slip
        stats.ok += 1
        content = orjson.dumps(answer).decode()
        content += " " * round(len(content) * settings.answer_padding)
        prompt_chars = sum(
            len(str(m.get("content", ""))) for m in body["messages"] if isinstance(m, dict)
        )
        return self._respond(body, _completion(model, content, prompt_chars), delay)

    def _respond(self, body: Any, answer_body: dict[str, Any], delay: dict[str, str]) -> Response:
        if body.get("stream") is True:
            options = body.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            events = self._stream(answer_body, usage)
            return StreamingResponse(events, 200, delay, media_type="text/event-stream")
        return _json(200, answer_body, delay)

    def _generate(self, body: Any, model: str) -> dict[str, Any]:
        """A generative answer: a tool call, JSON for a schema, or text (module docstring)."""
        stats, settings = self.stats, self.settings
        messages = body["messages"]
        prompt_chars = _text_chars(messages)
        tools = body.get("tools")
        if isinstance(tools, list) and tools and self._calls_tool(messages, body):
            rng = random.Random(request_seed("tool", messages, tools))
            call = tool_call(tools, body.get("tool_choice"), rng)
            if call is not None:
                stats.ok += 1
                stats.tool_calls += 1
                return _completion(model, None, prompt_chars, "tool_calls", [call])
        stats.ok += 1
        stats.generated += 1
        finish = "stop"
        response_format = body.get("response_format")
        schema = _json_schema(response_format)
        if schema is not None:
            value = instance(schema, random.Random(request_seed("json", messages, schema)))
            if self._rng.random() < settings.invalid_rate:
                stats.invalid += 1
                content = break_instance(schema, value, self._rng)
            else:
                content = orjson.dumps(value).decode()
        elif isinstance(response_format, dict) and response_format.get("type") == "json_object":
            rng = random.Random(request_seed("json_object", messages))
            content = orjson.dumps({"answer": sentences(rng, rng.randint(10, 40))}).decode()
        else:
            limit = body.get("max_completion_tokens", body.get("max_tokens"))
            limit = limit if isinstance(limit, int) and limit > 0 else None
            content, finish = text_answer(messages, limit, _CHARS_PER_TOKEN)
        return _completion(model, content, prompt_chars, finish)

    def _calls_tool(self, messages: list[Any], body: Any) -> bool:
        """Whether this turn asks for a tool: not once a tool has answered (the model then
        writes its answer), always when ``tool_choice`` demands one, else at the set rate."""
        if any(isinstance(m, dict) and m.get("role") == "tool" for m in messages):
            return False
        choice = body.get("tool_choice")
        if choice == "none":
            return False
        if choice == "required" or isinstance(choice, dict):
            return True
        return self._rng.random() < self.settings.tool_call_rate

    async def _stream(self, answer: dict[str, Any], usage: bool) -> AsyncIterator[bytes]:
        stats = self.stats
        stats.streams_open += 1
        finished = False
        try:
            for chunk in _chunks(answer, usage):
                if self.settings.stream_chunk_ms > 0:
                    await asyncio.sleep(self.settings.stream_chunk_ms / 1000.0)
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"
            yield b"data: [DONE]\n\n"
            finished = True
        finally:
            # The counters may have been reset meanwhile: count against the current ones.
            self.stats.streams_open -= 1
            if not finished:
                self.stats.streams_cancelled += 1

    async def _predict(self, text: str, labels: tuple[str, ...] | None) -> ModelResult:
        # The answering model is deterministic, so repeated questions (a load test replays a
        # few thousand texts) are answered from a bounded cache and the model is not the limit.
        key = (text, labels)
        result = self._answers.get(key)
        if result is None:
            result = await self.model.predict(ModelRequest(text=text, labels=labels))
            if self.settings.answer_cache_size:
                if len(self._answers) >= self.settings.answer_cache_size:
                    del self._answers[next(iter(self._answers))]
                self._answers[key] = result
        return result

    def _throttle(self, message: str) -> Response:
        headers = {"Retry-After": f"{self.settings.retry_after_s:g}"}
        return _error(429, "rate_limit_error", message, headers)

    def _authorized(self, request: Request) -> bool:
        key = self.settings.api_key
        return key is None or request.headers.get("authorization") == f"Bearer {key}"

    async def _models(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "invalid_request_error", "missing or wrong API key")
        data = [{"id": self.model.name, "object": "model", "created": 0, "owned_by": FINGERPRINT}]
        return _json(200, {"object": "list", "data": data})

    async def _stats(self, request: Request) -> Response:
        return _json(200, asdict(self.stats))

    async def _reset(self, request: Request) -> Response:
        in_flight, streams = self.stats.in_flight, self.stats.streams_open
        self.stats = SimulatorStats(in_flight=in_flight, streams_open=streams)
        return _json(200, asdict(self.stats))


def _question(body: Any) -> tuple[str, tuple[str, ...] | None]:
    """The last user message's text and the labels the response schema allows, if any."""
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise ValueError("no message with role 'user'")
    content = users[-1].get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise TypeError("user message content must be text")
    return content, _labels(body.get("response_format"))


def _labels(response_format: Any) -> tuple[str, ...] | None:
    try:
        enum = response_format["json_schema"]["schema"]["properties"]["label"]["enum"]
    except (KeyError, TypeError):
        return None
    return tuple(str(label) for label in enum) if isinstance(enum, list) and enum else None


def _json_schema(response_format: Any) -> dict[str, Any] | None:
    """The schema of a ``json_schema`` response format, if the request has one."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else None


def _text_chars(messages: list[Any]) -> int:
    """Characters of the messages' text content (tool results included)."""
    chars = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    return chars


def _completion(
    model: str,
    content: str | None,
    prompt_chars: int,
    finish_reason: str = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    written = len(content or "") + sum(
        len(c["function"]["name"]) + len(c["function"]["arguments"]) for c in tool_calls or ()
    )
    prompt_tokens = max(1, math.ceil(prompt_chars / _CHARS_PER_TOKEN))
    completion_tokens = max(1, math.ceil(written / _CHARS_PER_TOKEN))
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": f"chatcmpl-sim-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _chunks(answer: dict[str, Any], usage: bool) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed ``answer``."""
    choice = answer["choices"][0]
    content = choice["message"]["content"] or ""
    head = {k: answer[k] for k in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    step = _CHARS_PER_TOKEN
    chunks += [chunk({"content": content[i : i + step]}) for i in range(0, len(content), step)]
    calls = choice["message"].get("tool_calls") or ()
    # A tool call streams as one delta per call (OpenAI splits the arguments; readers join).
    chunks += [chunk({"tool_calls": [{"index": i, **call}]}) for i, call in enumerate(calls)]
    chunks.append(chunk({}, choice["finish_reason"]))
    if usage:
        chunks.append({**head, "choices": [], "usage": answer["usage"]})
    return chunks


def _error(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return _json(status, body, headers)


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")
