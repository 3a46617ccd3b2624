"""An async client for OpenAI-compatible chat endpoints.

One :class:`OpenAIClient` talks to OpenAI, vLLM, Ollama or a llama.cpp server, chosen by
``base_url`` (``https://api.openai.com/v1``, ``http://gpu-1:8000/v1``,
``http://localhost:11434/v1``, ...). It keeps one pooled aiohttp session (a pooled httpx client
relays an order of magnitude fewer requests per second at 64 connections; see
``bench/http_client.py``), bounds every call by a timeout and every answer by a size, asks for
structured output with ``response_format: json_schema`` and validates the answer itself, because
not every server enforces the schema.

Failures become :class:`~sluice.errors.StepError`, so the runtime's retry policy needs no
knowledge of HTTP:

=====================================  ==========  ============================================
failure                                retryable   ``retry_after``
=====================================  ==========  ============================================
429, 408, 409, 425, any 5xx            yes         ``Retry-After`` / ``retry-after-ms``, if sent
timeout, connection refused or reset   yes         none
400, 401, 403, 404, 422, other 4xx     no          none
answer not JSON or not valid against   no          none (:class:`ModelOutputError`)
the schema, malformed envelope, larger
than ``max_response_bytes``
=====================================  ==========  ============================================

:class:`~sluice.models.chat_model.ChatModel` puts this client behind the
:class:`~sluice.models.base.Model` protocol for classification.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
import jsonschema
import orjson

from sluice.errors import ConfigError, StepError
from sluice.models.base import Usage
from sluice.models.prices import PriceTable
from sluice.models.sse import StreamAssembler, StreamTooLargeError
from sluice.outbound.policy import EgressPolicy
from sluice.outbound.retry_after import parse_retry_after
from sluice.outbound.sessions import client_session
from sluice.telemetry.tracing import outbound_headers

_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


class ModelOutputError(StepError):
    """A model answered, but not with what was asked; asking again the same way will not help.

    ``content`` keeps the raw answer for debugging; it is left out of the message because it
    may echo the input.
    """

    def __init__(self, message: str, content: str = "") -> None:
        super().__init__(message, retryable=False)
        self.content = content


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Where and how to reach one OpenAI-compatible endpoint."""

    base_url: str
    api_key: str | None = field(default=None, repr=False)  # a secret: never in a repr
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    max_connections: int = 64
    max_response_bytes: int = 4 * 1024 * 1024
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """One chat completion: its text, the parsed JSON when a schema was given, usage and cost."""

    model: str
    content: str
    output: Mapping[str, Any] | None
    usage: Usage
    cost: float
    latency_ms: float
    system_fingerprint: str | None = None
    #: Functions the model asked to call (OpenAI's ``tool_calls``), when it asked for any.
    tool_calls: tuple[Mapping[str, Any], ...] = ()


class JsonOutput:
    """A JSON Schema the answer must satisfy, checked once and compiled once."""

    def __init__(self, schema: Mapping[str, Any], name: str = "answer", strict: bool = True):
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ConfigError(f"invalid output schema {name!r}: {exc.message}") from exc
        self.schema = schema
        self.name = name
        self.strict = strict
        self._validator = jsonschema.Draft202012Validator(schema)

    def response_format(self) -> dict[str, Any]:
        """The ``response_format`` field that asks the server for this schema."""
        spec = {"name": self.name, "schema": self.schema, "strict": self.strict}
        return {"type": "json_schema", "json_schema": spec}

    def parse(self, content: str) -> dict[str, Any]:
        """Parse and validate an answer; raise :class:`ModelOutputError` when it does not fit."""
        try:
            value = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise ModelOutputError(f"answer is not JSON ({exc})", content) from exc
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(value))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "(root)"
            raise ModelOutputError(
                f"answer does not match schema {self.name!r} at {where}: {error.message}", content
            )
        if not isinstance(value, dict):
            raise ModelOutputError("answer is not a JSON object", content)
        return value


class OpenAIClient:
    """A pooled async client for one OpenAI-compatible endpoint; use ``async with`` or aclose().

    Every call passes ``policy`` (the app's egress policy) narrowed to ``base_url``'s host:
    redirects elsewhere are refused and the endpoint's addresses are checked; the default
    policy allows no private address (a local server needs ``allow_private``).
    """

    def __init__(
        self,
        settings: ClientSettings,
        *,
        prices: PriceTable | None = None,
        policy: EgressPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.prices = prices
        self._base = settings.base_url.rstrip("/")
        self.policy = (policy or EgressPolicy()).only(self._base)
        self._headers = {"Content-Type": "application/json", **dict(settings.headers)}
        if settings.api_key:
            self._headers["Authorization"] = f"Bearer {settings.api_key}"
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def __aenter__(self) -> OpenAIClient:
        self._ensure_session()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections; the client cannot be used afterwards."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def chat(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        output: JsonOutput | None = None,
        params: Mapping[str, Any] | None = None,
        price_as: str | None = None,
        timeout_s: float | None = None,
        tools: Sequence[Mapping[str, Any]] = (),
        check: bool = True,
        on_text: Callable[[str], None] | None = None,
    ) -> ChatResponse:
        """Ask for one chat completion.

        With ``on_text`` (and no ``tools``) the answer is asked for streamed (``stream: true``
        with the usage chunk) and each text delta is passed to ``on_text`` as it is read; the
        response is the same as unstreamed, read through the same bounds and checks.

        ``output`` asks for and validates structured output (``check=False`` only asks: the
        caller validates, as the ``generate`` step does to repair); ``params``
        (``temperature``, ``max_tokens``, ``seed``, ...) go into the request body as they are;
        ``tools`` declares functions the model may call; ``price_as`` names the price entry
        when it differs from the provider's model id.
        """
        body: dict[str, Any] = {"model": model, "messages": list(messages), **(params or {})}
        if output is not None:
            body["response_format"] = output.response_format()
        if tools:
            body["tools"] = [dict(tool) for tool in tools]
        started = time.perf_counter()
        if on_text is not None and not tools:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
            answer = await self._request("POST", "/chat/completions", body, timeout_s, on_text)
        else:
            answer = await self._request("POST", "/chat/completions", body, timeout_s)
        latency_ms = (time.perf_counter() - started) * 1000.0
        content, usage, calls = _read_completion(answer, tools=bool(tools))
        parsed = output.parse(content) if output is not None and check and not calls else None
        priced = price_as or model
        cost = self.prices.cost(priced, usage) if self.prices is not None else 0.0
        fingerprint = answer.get("system_fingerprint")
        return ChatResponse(
            model=str(answer.get("model") or model),
            content=content,
            output=parsed,
            usage=usage,
            cost=cost,
            latency_ms=latency_ms,
            system_fingerprint=fingerprint if isinstance(fingerprint, str) else None,
            tool_calls=calls,
        )

    async def models(self) -> list[str]:
        """Ids of the models the endpoint serves (``GET /models``)."""
        answer = await self._request("GET", "/models", None, None)
        data = answer.get("data")
        if not isinstance(data, list):
            raise ModelOutputError("GET /models: answer has no 'data' list")
        return [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise StepError("the model client is closed", retryable=False)
        if self._session is None:
            self._session = client_session(
                self.settings.max_connections, policy=self.policy, headers=self._headers
            )
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        timeout_s: float | None,
        on_text: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        session = self._ensure_session()
        url = self._base + path
        total = timeout_s if timeout_s is not None else self.settings.timeout_s
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=self.settings.connect_timeout_s)
        data = orjson.dumps(body) if body is not None else None
        try:
            # The provider (or a self-hosted server) sees the event's trace, if it traces.
            traced = outbound_headers()
            async with session.request(
                method, url, data=data, timeout=timeout, headers=traced
            ) as response:
                status, headers = response.status, response.headers
                limit = self.settings.max_response_bytes
                if on_text is not None and status < 400 and _is_event_stream(headers):
                    return await _read_stream(response, limit, on_text)
                raw = await _read_bounded(response, limit)
        except TimeoutError as exc:
            raise StepError(f"{method} {url}: no answer within {total:g} s") from exc
        except aiohttp.ClientError as exc:
            raise StepError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        if status >= 400:
            retryable = status >= 500 or status in _RETRYABLE_4XX
            raise StepError(
                f"{method} {url} answered {status}: {_error_message(raw)}",
                retryable=retryable,
                retry_after=parse_retry_after(headers) if retryable else None,
            )
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ModelOutputError(f"{method} {url}: answer body is not JSON") from exc
        if not isinstance(answer, dict):
            raise ModelOutputError(f"{method} {url}: answer body is not a JSON object")
        return answer


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    # A misbehaving server must not make us buffer an unbounded body.
    if response.content_length is not None:
        if response.content_length > limit:
            raise ModelOutputError(f"answer of {response.content_length} bytes exceeds {limit}")
        return await response.read()
    chunks = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        chunks += chunk
        if len(chunks) > limit:
            raise ModelOutputError(f"answer exceeds {limit} bytes")
    return bytes(chunks)


def _is_event_stream(headers: Mapping[str, str]) -> bool:
    # A server that ignores ``stream: true`` answers JSON, which is read as usual.
    return headers.get("Content-Type", "").startswith("text/event-stream")


async def _read_stream(
    response: aiohttp.ClientResponse, limit: int, on_text: Callable[[str], None]
) -> dict[str, Any]:
    """A streamed completion, its text deltas passed on as they are read, joined into the
    completion an unstreamed answer would have been (bounded like one)."""
    assembler = StreamAssembler(limit, keep_usage=True, on_text=on_text)
    try:
        async for chunk in response.content.iter_any():
            assembler.feed(chunk)
            if assembler.done:
                break
    except StreamTooLargeError as exc:
        raise ModelOutputError(f"streamed answer exceeds {limit} bytes") from exc
    if not assembler.done:
        raise StepError("the streamed answer ended before [DONE]")
    if not assembler.rebuildable:
        raise ModelOutputError("the streamed answer has deltas other than text")
    return assembler.completion()


def _error_message(raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:300].decode("utf-8", "replace") or "(empty body)"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])[:300]
    return str(error or body)[:300]


def _read_completion(
    answer: Mapping[str, Any], *, tools: bool = False
) -> tuple[str, Usage, tuple[Mapping[str, Any], ...]]:
    try:
        message = answer["choices"][0]["message"]
        content = message["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ModelOutputError("completion has no choices[0].message.content") from exc
    calls = _tool_calls(message) if tools else ()
    if calls and content is None:  # a tool-call turn carries no text
        content = ""
    if not isinstance(content, str):
        refusal = message.get("refusal") if isinstance(message, dict) else None
        reason = f"refused: {refusal}" if refusal else "content is not text"
        raise ModelOutputError(f"completion {reason}")
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        return content, Usage(), calls
    return (
        content,
        Usage(
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
        ),
        calls,
    )


def _tool_calls(message: Any) -> tuple[Mapping[str, Any], ...]:
    """The message's ``tool_calls``: each ``{id, type, function: {name, arguments}}``."""
    raw = message.get("tool_calls") if isinstance(message, dict) else None
    if not isinstance(raw, list):
        return ()
    calls: list[Mapping[str, Any]] = []
    for index, call in enumerate(raw):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise ModelOutputError(f"completion tool_calls[{index}] has no function name")
        arguments = function.get("arguments")
        calls.append({
            "id": str(call.get("id") or f"call_{index}"),
            "type": "function",
            "function": {
                "name": function["name"],
                "arguments": arguments if isinstance(arguments, str) else "{}",
            },
        })  # fmt: skip
    return tuple(calls)
