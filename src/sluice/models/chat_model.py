"""A chat model used as a classifier, behind the :class:`~sluice.models.base.Model` protocol.

The model is asked for ``{"label": <one of the labels>, "confidence": <0..1>}`` with
``response_format: json_schema``; the answer is validated (an answer outside the labels is a
:class:`~sluice.models.openai_client.ModelOutputError`) and its confidence becomes
:attr:`ModelResult.confidence`, so the cascade treats a remote model like a local one. The
confidence is the model's own estimate: it is not calibrated, and a cascade threshold tuned on a
golden set accounts for that.

:class:`ChatModelBuilder` builds them from ``kind: openai`` entries of the ``models:`` section
(plug it into :func:`sluice.models.registry.build_models` as ``builders={"openai": b}`` and
``validators={"openai": b.validate}``) and owns one pooled client per endpoint::

    models:
      large:
        kind: openai
        base_url: http://localhost:8900/v1   # OpenAI, vLLM, Ollama, llama.cpp, the simulator
        model: gpt-4o-mini                   # the provider's id; default: the entry's name
        api_key_env: OPENAI_API_KEY          # optional; read once from the injected environ
        # or: api_key: ${secret:openai_key}  # a secret of the store (sluice secret set)
        timeout_s: 20                        # optional, per call (default 30)
        max_connections: 64                  # optional, per endpoint
        params: {temperature: 0, max_tokens: 64}
        labels: data/train.csv               # a list, or a CSV whose label column lists them
        version: "2"                         # bump when the prompt or provider model changes

Prices come from the ``prices:`` section (:mod:`sluice.models.prices`), keyed by entry name.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from sluice.errors import ConfigError, StepError
from sluice.models.base import ModelRequest, ModelResult, Usage
from sluice.models.estimate import prompt_tokens
from sluice.models.openai_client import ClientSettings, JsonOutput, OpenAIClient
from sluice.models.prices import PriceTable
from sluice.outbound.policy import EgressPolicy

# Generation parameters a request may set; anything else in ModelRequest.params is ignored
# here so that unrelated keys cannot change the provider call.
_PASSED_PARAMS = ("temperature", "top_p", "seed", "max_tokens")
# What a generative call (a prompt template's params) may set.
_GENERATION_PARAMS = (
    "temperature", "top_p", "seed", "max_tokens", "max_completion_tokens", "stop",
    "presence_penalty", "frequency_penalty", "tool_choice",
)  # fmt: skip
_MAX_CONTEXT_ITEMS = 10
_MAX_CONTEXT_CHARS = 500
_MAX_SCHEMAS = 64
# Output a budget assumes when max_tokens was set to something that is not a count.
_OUTPUT_BOUND = 4096

_SYSTEM_PROMPT = (
    "You are a classifier. Choose exactly one label for the user's message from this list:\n"
    "{labels}\n"
    'Answer with a JSON object only: {{"label": <one label from the list>, '
    '"confidence": <your probability, between 0 and 1, that the label is right>}}.'
)


class TextSink(Protocol):
    """Takes a generative call's text as it is produced (see :data:`TEXT_SINK`)."""

    def begin(self) -> None:
        """An attempt of the call starts: text written before it is superseded."""

    def write(self, text: str) -> None:
        """The next piece of the answer's text."""


#: Set by a caller that wants the text of the generative calls it makes (in this task) as it
#: is produced: such a call without tools is then streamed from the provider. Unset, calls
#: are not streamed. A context variable, so the models and wrappers in between (cache,
#: breaker, retries, metering) need not know about it.
TEXT_SINK: ContextVar[TextSink | None] = ContextVar("sluice_text_sink", default=None)


def label_schema(labels: Sequence[str]) -> dict[str, Any]:
    """The JSON Schema of a classification answer restricted to ``labels``."""
    return {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": list(labels)},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["label", "confidence"],
        "additionalProperties": False,
    }


class ChatModel:
    """Classify with an OpenAI-compatible chat endpoint.

    ``name`` is the model's name in Sluice (prices, caches, metrics); ``remote_model`` is the
    provider's model id (defaults to ``name``). ``labels`` apply when a request carries none.
    The client is shared and owned by the caller.
    """

    def __init__(
        self,
        client: OpenAIClient,
        *,
        name: str,
        remote_model: str | None = None,
        version: str = "1",
        labels: Sequence[str] | None = None,
        params: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        if client.prices is not None and name not in client.prices:
            raise ConfigError(
                f"no price configured for model {name!r}", [f"prices.{name}: missing"]
            )
        self._client = client
        self._name = name
        self._remote = remote_model or name
        self._version = version
        self._labels = tuple(labels) if labels else None
        self._params = {"temperature": 0.0, "max_tokens": 64, **(params or {})}
        # A generative call takes only what the entry set: the classifier's short default
        # max_tokens would cut every draft.
        self._entry_params = dict(params or {})
        self._timeout_s = timeout_s
        self._outputs: dict[tuple[str, ...], JsonOutput] = {}
        self._schemas: dict[str, JsonOutput] = {}

    @property
    def name(self) -> str:
        """Stable model name, used in prices, caches and metrics."""
        return self._name

    @property
    def provider(self) -> str:
        """``gen_ai.provider.name`` of the spans: ``openai`` for api.openai.com, else the
        endpoint's host (a self-hosted server or the simulator)."""
        host = urlsplit(self._client.settings.base_url).hostname or "unknown"
        return "openai" if host.endswith("openai.com") else host

    @property
    def version(self) -> str:
        """The remote model id and this adapter's version: both change the answers."""
        return f"{self._remote}@{self._version}"

    def cost_bound(self, request: ModelRequest) -> float | None:
        """The most a call on ``request`` can cost (what a spend budget holds before it).

        Its price on the estimated tokens of the messages it would send and on the most
        output it lets the model write (``max_tokens``); None without a price table.
        """
        if self._client.prices is None or self._name not in self._client.prices:
            return None
        if request.messages:
            params = self._generation_params(request)
            asked = params.get("max_tokens", params.get("max_completion_tokens"))
            most = asked if isinstance(asked, int) and not isinstance(asked, bool) else None
            sent = [*request.messages, {"content": json.dumps(list(request.tools))}]
            tokens = prompt_tokens(sent) if request.tools else prompt_tokens(request.messages)
            usage = Usage(tokens, max(1, most or _OUTPUT_BOUND))
            return self._client.prices[self._name].cost(usage)
        labels = tuple(request.labels) if request.labels else self._labels or ()
        asked = request.params.get("max_tokens", self._params.get("max_tokens"))
        most = asked if isinstance(asked, int) and not isinstance(asked, bool) else _OUTPUT_BOUND
        usage = Usage(prompt_tokens(self._messages(request, labels)), max(1, most))
        return self._client.prices[self._name].cost(usage)

    async def predict(self, request: ModelRequest) -> ModelResult:
        """Classify ``request.text`` into one of the request's (or the default) labels; or,
        for a request with ``messages``, generate (:meth:`generate`)."""
        if request.messages:
            return await self.generate(request)
        labels = tuple(request.labels) if request.labels else self._labels
        if not labels:
            raise StepError(
                f"model {self._name!r} was given no labels to choose from", retryable=False
            )
        params = {
            **self._params,
            **{k: request.params[k] for k in _PASSED_PARAMS if k in request.params},
        }
        response = await self._client.chat(
            self._remote,
            self._messages(request, labels),
            output=self._output(labels),
            params=params,
            price_as=self._name,
            timeout_s=self._timeout_s,
        )
        output = dict(response.output or {})
        return ModelResult(
            model=self._name,
            output=output,
            label=str(output["label"]),
            confidence=float(output["confidence"]),
            usage=response.usage,
            cost=response.cost,
            latency_ms=response.latency_ms,
        )

    async def generate(self, request: ModelRequest) -> ModelResult:
        """Send ``request.messages`` as they are (with its schema and tools) and return the
        answer unchecked: ``output`` is ``{"text": ..., "tool_calls": [...]}``; the caller
        validates structured output against the schema (the ``generate`` step, which repairs).
        """
        schema = request.output_schema
        output = None if schema is None else self._schema_output(schema)
        sink = TEXT_SINK.get()
        streamed = sink is not None and not request.tools
        if sink is not None and streamed:
            sink.begin()
        response = await self._client.chat(
            self._remote,
            request.messages,
            output=output,
            params=self._generation_params(request),
            price_as=self._name,
            timeout_s=self._timeout_s,
            tools=request.tools,
            check=False,
            on_text=sink.write if sink is not None and streamed else None,
        )
        return ModelResult(
            model=self._name,
            output={"text": response.content, "tool_calls": list(response.tool_calls)},
            label=None,
            confidence=1.0,
            usage=response.usage,
            cost=response.cost,
            latency_ms=response.latency_ms,
        )

    def _schema_output(self, schema: Mapping[str, Any]) -> JsonOutput:
        # Checking a schema costs more than a fast local call: templates are few, so each
        # schema is checked and compiled once (a small bounded cache, as for label sets).
        key = json.dumps(schema, sort_keys=True, default=str)
        output = self._schemas.get(key)
        if output is None:
            if len(self._schemas) >= _MAX_SCHEMAS:
                self._schemas.clear()
            output = self._schemas[key] = JsonOutput(schema, name="output")
        return output

    def _generation_params(self, request: ModelRequest) -> dict[str, Any]:
        merged = {**self._entry_params, **request.params}
        return {k: merged[k] for k in _GENERATION_PARAMS if k in merged}

    def _output(self, labels: tuple[str, ...]) -> JsonOutput:
        # Compiling a validator per call would cost more than the HTTP round trip on a fast
        # local server; label sets are few, so a small bounded cache holds them.
        output = self._outputs.get(labels)
        if output is None:
            if len(self._outputs) >= _MAX_SCHEMAS:
                self._outputs.clear()
            output = self._outputs[labels] = JsonOutput(label_schema(labels), name="classification")
        return output

    @staticmethod
    def _messages(request: ModelRequest, labels: tuple[str, ...]) -> list[dict[str, str]]:
        system = _SYSTEM_PROMPT.format(labels="\n".join(f"- {label}" for label in labels))
        examples = [_render(item) for item in request.context[:_MAX_CONTEXT_ITEMS]]
        if examples:
            system += "\nSimilar messages already resolved:\n" + "\n".join(examples)
        return [{"role": "system", "content": system}, {"role": "user", "content": request.text}]


def _render(item: Mapping[str, Any]) -> str:
    if "text" in item and "label" in item:
        line = f"- {item['text']} -> {item['label']}"
    else:
        line = "- " + json.dumps(dict(item), default=str, ensure_ascii=False)
    return line[:_MAX_CONTEXT_CHARS]


_ENTRY_KEYS = frozenset(
    {
        "kind",
        "base_url",
        "model",
        "api_key",
        "api_key_env",
        "timeout_s",
        "max_connections",
        "params",
    }
    | {"labels", "version"}
)


def _labels(raw: object, app_dir: Path) -> list[str] | None:
    """A label list as given, or the distinct labels of a CSV under ``app_dir``.

    The CSV's ``label`` column, or ``category`` as in the BANKING77 files.
    """
    if not isinstance(raw, str):
        return cast("list[str] | None", raw)
    path = app_dir / raw
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            column = next((c for c in ("label", "category") if c in (reader.fieldnames or [])), "")
            labels = sorted({row[column] for row in reader})
    except (OSError, KeyError) as exc:
        raise ConfigError(f"labels: cannot read a label column from {path}: {exc}") from exc
    if not labels:
        raise ConfigError(f"labels: {path} has no rows")
    return labels


class ChatModelBuilder:
    """Builds :class:`ChatModel` s from ``kind: openai`` entries; owns their clients.

    One client (one connection pool) per endpoint and key, shared by the models on it. Use
    ``async with`` or :meth:`aclose` to close them.
    """

    def __init__(
        self,
        *,
        prices: PriceTable | None = None,
        environ: Mapping[str, str] | None = None,
        policy: EgressPolicy | None = None,
    ) -> None:
        self.prices = prices
        self.policy = policy
        self._environ = os.environ if environ is None else environ
        self._clients: dict[tuple[str, str | None, int], OpenAIClient] = {}

    def validate(self, path: str, entry: Mapping[str, Any]) -> list[str]:
        """Problems with one entry, each prefixed with ``path``."""
        problems = [f"{path}.{key}: unknown key" for key in sorted(set(entry) - _ENTRY_KEYS)]
        url = entry.get("base_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            problems.append(f"{path}.base_url: required, an http(s) URL ending in /v1")
        for key in ("model", "api_key_env", "version"):
            if key in entry and not (isinstance(entry[key], str) and entry[key]):
                problems.append(f"{path}.{key}: must be a non-empty string")
        if "api_key" in entry and "api_key_env" in entry:
            problems.append(f"{path}.api_key: give api_key or api_key_env, not both")
        if "api_key" in entry and not (isinstance(entry["api_key"], str) and entry["api_key"]):
            problems.append(f"{path}.api_key: must be a non-empty string (${{secret:NAME}})")
        env = entry.get("api_key_env")
        if isinstance(env, str) and env and env not in self._environ:
            problems.append(f"{path}.api_key_env: environment variable {env} is not set")
        timeout = entry.get("timeout_s", 30)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            problems.append(f"{path}.timeout_s: must be a positive number of seconds")
        connections = entry.get("max_connections", 64)
        if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
            problems.append(f"{path}.max_connections: must be a positive integer")
        if not isinstance(entry.get("params", {}), Mapping):
            problems.append(f"{path}.params: must be a mapping of generation parameters")
        labels = entry.get("labels", [])
        if isinstance(labels, str):
            if not labels:
                problems.append(f"{path}.labels: a CSV path must not be empty")
        elif not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            problems.append(f"{path}.labels: a list of strings, or a CSV with a label column")
        name = path.rsplit(".", 1)[-1]
        if self.prices is not None and name not in self.prices:
            problems.append(f"{path}: no price for it in prices.{name}")
        return problems

    def __call__(self, name: str, entry: Mapping[str, Any], app_dir: Path) -> ChatModel:
        """Build the model for one validated entry (a ``labels`` CSV is read under ``app_dir``)."""
        env = entry.get("api_key_env")
        api_key = entry.get("api_key") or (self._environ.get(env) if env else None)
        connections = int(entry.get("max_connections", 64))
        key = (str(entry["base_url"]), api_key, connections)
        client = self._clients.get(key)
        if client is None:
            settings = ClientSettings(key[0], api_key=api_key, max_connections=connections)
            if self.policy is not None:  # the app's bound on answers (outbound.max_response_bytes)
                settings = replace(settings, max_response_bytes=self.policy.max_response_bytes)
            client = self._clients[key] = OpenAIClient(
                settings, prices=self.prices, policy=self.policy
            )
        return ChatModel(
            client,
            name=name,
            remote_model=entry.get("model"),
            version=str(entry.get("version", "1")),
            labels=_labels(entry.get("labels"), app_dir),
            params=entry.get("params"),
            timeout_s=float(entry.get("timeout_s", 30)),
        )

    async def aclose(self) -> None:
        """Close every client built so far."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> ChatModelBuilder:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
