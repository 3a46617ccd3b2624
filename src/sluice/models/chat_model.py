"""A chat model used as a classifier, behind the :class:`~sluice.models.base.Model` protocol.

The model is asked for ``{"label": <one of the labels>, "confidence": <0..1>}`` with
``response_format: json_schema``; the answer is validated (an answer outside the labels is a
:class:`~sluice.models.openai_client.ModelOutputError`) and its confidence becomes
:attr:`ModelResult.confidence`, so the cascade treats a remote model like a local one. The
confidence is the model's own estimate: it is not calibrated, and a cascade threshold tuned on a
golden set accounts for that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sluice.errors import ConfigError, StepError
from sluice.models.base import ModelRequest, ModelResult
from sluice.models.openai_client import JsonOutput, OpenAIClient

# Generation parameters a request may set; anything else in ModelRequest.params is ignored
# here so that unrelated keys cannot change the provider call.
_PASSED_PARAMS = ("temperature", "top_p", "seed", "max_tokens")
_MAX_CONTEXT_ITEMS = 10
_MAX_CONTEXT_CHARS = 500
_MAX_SCHEMAS = 64

_SYSTEM_PROMPT = (
    "You are a classifier. Choose exactly one label for the user's message from this list:\n"
    "{labels}\n"
    'Answer with a JSON object only: {{"label": <one label from the list>, '
    '"confidence": <your probability, between 0 and 1, that the label is right>}}.'
)


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
        self._timeout_s = timeout_s
        self._outputs: dict[tuple[str, ...], JsonOutput] = {}

    @property
    def name(self) -> str:
        """Stable model name, used in prices, caches and metrics."""
        return self._name

    @property
    def version(self) -> str:
        """The remote model id and this adapter's version: both change the answers."""
        return f"{self._remote}@{self._version}"

    async def predict(self, request: ModelRequest) -> ModelResult:
        """Classify ``request.text`` into one of the request's (or the default) labels."""
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
