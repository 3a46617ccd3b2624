"""A mock of a partner API generated from its spec (``sluice mock serve SPEC``).

Each operation answers with its first 2xx response: the example the spec gives, else the
simplest value that validates against the response schema (generated once, at start). Every
request is checked against the spec first: one that does not conform gets 400 (a body that is
not JSON) or 422, a problem document listing what is wrong, and is recorded like every other.
Optional faults make a client's retries and backoff visible: ``latency_ms`` before each answer,
``error_rate`` of answers a 500, and ``rate_limit`` requests a second, past which the answer is
429 with ``Retry-After``. A spec that cannot be mocked raises :class:`MockError` naming each
operation and why, before anything is served.

``GET /__mock/requests`` returns the counts and the latest recorded requests (``DELETE``
forgets them); :meth:`Mock.records` gives the same to code in the same process.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.contracts.schemas import SchemaError, example, problems
from sluice.contracts.spec import Spec
from sluice.errors import ConfigError

#: The mock's own routes live under this prefix, outside any partner's paths.
CONTROL_PREFIX = "/__mock"
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_SHOWN = 100
_BODY_KEPT = 2048


class MockError(ConfigError):
    """A spec that cannot be mocked; ``problems`` names each operation and the reason."""


@dataclass(frozen=True, slots=True)
class MockOptions:
    """Faults and bounds of a mock."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    rate_limit: int = 0  # requests a second; 0: no limit
    seed: int = 0
    max_body_bytes: int = 1024 * 1024
    max_recorded: int = 10_000

    def __post_init__(self) -> None:
        found = []
        if self.latency_ms < 0:
            found.append(f"latency: must be at least 0 ms, got {self.latency_ms:g}")
        if not 0.0 <= self.error_rate <= 1.0:
            found.append(f"error-rate: must be between 0 and 1, got {self.error_rate:g}")
        if self.rate_limit < 0:
            found.append(f"rate-limit: must be at least 0, got {self.rate_limit}")
        if found:
            raise ConfigError("invalid mock options", found)


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request the mock received and what it answered."""

    method: str
    path: str
    operation: str | None
    status: int
    problems: tuple[str, ...]
    body: str

    @property
    def valid(self) -> bool:
        """Whether the request conformed to the spec."""
        return self.operation is not None and not self.problems


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes | None


def _answers(spec: Spec) -> dict[str, _Answer]:
    answers: dict[str, _Answer] = {}
    found: list[str] = []
    for op in spec.operations:
        where = f"{op.method} {op.path} ({op.id})"
        ok = op.success()
        if ok is None:
            found.append(f"{where}: no 2xx response to answer with")
            continue
        if ok.has_example:
            wrong = problems(ok.schema, ok.example) if ok.schema is not None else []
            if wrong:
                found.append(
                    f"{where}: the example of response {ok.status} does not validate "
                    f"against its schema: {wrong[0]}"
                )
                continue
            answers[op.id] = _Answer(ok.status, orjson.dumps(ok.example))
        elif ok.schema is not None:
            try:
                value = example(ok.schema, f"response {ok.status}")
            except SchemaError as exc:
                found.append(f"{where}: {exc}")
                continue
            answers[op.id] = _Answer(ok.status, orjson.dumps(value))
        else:
            answers[op.id] = _Answer(ok.status, None)
    if found:
        raise MockError(f"{spec.source}: the spec cannot be mocked", found)
    return answers


def _problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return Response(orjson.dumps(body), status, media_type="application/problem+json")


class Mock:
    """The mock of one spec: an ASGI app (:attr:`app`) and what it recorded."""

    def __init__(
        self,
        spec: Spec,
        options: MockOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.options = options or MockOptions()
        self._answers = _answers(spec)
        self._random = random.Random(self.options.seed)
        self._clock = clock
        self._window = (0, 0)  # (second, requests in it)
        self._records: deque[Recorded] = deque(maxlen=self.options.max_recorded)
        self._counts: Counter[str] = Counter()
        self.app = Starlette(
            routes=[
                Route(CONTROL_PREFIX + "/requests", self._control, methods=["GET", "DELETE"]),
                Route("/{path:path}", self._serve, methods=_ALL_METHODS),
            ]
        )

    def records(self) -> list[Recorded]:
        """The recorded requests, oldest first (at most ``max_recorded``, the latest)."""
        return list(self._records)

    def counts(self) -> dict[str, int]:
        """Requests seen, valid, invalid, and answered with each status."""
        return dict(self._counts)

    def reset(self) -> None:
        """Forget the recorded requests and counts."""
        self._records.clear()
        self._counts.clear()

    async def _control(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.reset()
            return Response(status_code=204)
        shown = [asdict(r) for r in list(self._records)[-_SHOWN:]]
        return Response(
            orjson.dumps({"counts": self.counts(), "requests": shown}),
            media_type="application/json",
        )

    def _limited(self) -> bool:
        if not self.options.rate_limit:
            return False
        second = int(self._clock())
        start, used = self._window
        used = used + 1 if second == start else 1
        self._window = (second, used)
        return used > self.options.rate_limit

    async def _serve(self, request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.options.max_body_bytes:
                return self._record(
                    request,
                    None,
                    ["body: larger than the mock reads"],
                    body,
                    _problem(413, "Payload Too Large", "body too large"),
                )
        op, found = self.spec.check_request(
            request.method,
            request.url.path,
            request.headers,
            dict(request.query_params),
            bytes(body),
        )
        if self._limited():  # refused before it is read, as a real API would; still recorded
            answer = _problem(429, "Too Many Requests", "the mock's rate limit is used up")
            answer.headers["retry-after"] = "1"
            return await self._answer(
                self._record(request, op.id if op else None, found, body, answer)
            )
        if op is None or found:
            not_json = any(p.startswith("body: not JSON") for p in found)
            status = 404 if op is None else 400 if not_json else 422
            answer = _problem(
                status, "Request does not match the spec", "; ".join(found), problems=found
            )
            return await self._answer(
                self._record(request, op.id if op else None, found, body, answer)
            )
        if self.options.error_rate and self._random.random() < self.options.error_rate:
            answer = _problem(500, "Injected error", "the mock's error rate chose this request")
            return await self._answer(self._record(request, op.id, [], body, answer))
        canned = self._answers[op.id]
        answer = (
            Response(status_code=canned.status)
            if canned.body is None
            else Response(canned.body, canned.status, media_type="application/json")
        )
        return await self._answer(self._record(request, op.id, [], body, answer))

    def _record(
        self,
        request: Request,
        op_id: str | None,
        found: list[str],
        body: bytearray,
        answer: Response,
    ) -> Response:
        text = bytes(body[:_BODY_KEPT]).decode("utf-8", "replace")
        record = Recorded(
            request.method, request.url.path, op_id, answer.status_code, tuple(found), text
        )
        self._records.append(record)
        self._counts["requests"] += 1
        self._counts["valid" if record.valid else "invalid"] += 1
        self._counts[str(answer.status_code)] += 1
        return answer

    async def _answer(self, answer: Response) -> Response:
        if self.options.latency_ms:
            await asyncio.sleep(self.options.latency_ms / 1000.0)
        return answer
