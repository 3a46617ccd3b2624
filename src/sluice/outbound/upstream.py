"""One provider deployment behind pooled connections: relay a body, get bytes back.

The AI gateway relays request bodies it has already serialized and answers with the provider's
bytes as they are, so nothing here builds or parses completions: that keeps the relay at the
cost of one pooled HTTP round trip. Failures raise :class:`UpstreamError`, retryable (429,
408, 409, 425, 5xx, timeouts, refused or reset connections: the next deployment may answer)
or not (other 4xx: the request itself is wrong, and the provider's error goes back as it is).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import aiohttp

from sluice.errors import StepError
from sluice.outbound.http1 import Http1Error, Http1Pool
from sluice.outbound.policy import EgressDeniedError, EgressPolicy
from sluice.outbound.retry_after import parse_retry_after
from sluice.outbound.sessions import client_session

_RETRYABLE_4XX = frozenset({408, 409, 425, 429})
_ERROR_BODY_BYTES = 64 * 1024


class Deployment(Protocol):
    """What a relay needs to know of one provider deployment (the AI gateway's config has
    more: models, prices, limits)."""

    @property
    def name(self) -> str:
        """The deployment's name in errors and metrics."""
        ...

    @property
    def base_url(self) -> str:
        """The provider's OpenAI-compatible base URL, without a trailing slash."""
        ...

    @property
    def api_key(self) -> str | None:
        """The bearer token, if the provider takes one."""
        ...

    @property
    def timeout_s(self) -> float:
        """The most a call may take (between two chunks, for a stream)."""
        ...

    @property
    def max_connections(self) -> int:
        """Connections kept to the provider, per pool."""
        ...


class UpstreamError(StepError):
    """A provider refused or failed a relayed call.

    ``status`` is the provider's HTTP status (0 when no answer came); ``body`` its error
    document, relayed to the caller for requests the provider judged invalid.
    """

    def __init__(
        self,
        deployment: str,
        status: int,
        message: str,
        *,
        body: bytes = b"",
        retry_after: float | None = None,
    ) -> None:
        retryable = status == 0 or status >= 500 or status in _RETRYABLE_4XX
        super().__init__(
            f"deployment {deployment!r}: {message}", retryable=retryable, retry_after=retry_after
        )
        self.deployment = deployment
        self.status = status
        self.body = body


class Upstream:
    """A pooled client of one deployment; :meth:`start` before use, :meth:`aclose` after.

    Both pools pass ``policy`` (the app's egress policy) narrowed to the deployment's host:
    its addresses are checked as any outbound call's; the default policy allows no private
    address. A refusal is an :class:`UpstreamError` without a status (the next deployment
    may be allowed).
    """

    def __init__(
        self,
        deployment: Deployment,
        max_response_bytes: int,
        policy: EgressPolicy | None = None,
    ) -> None:
        self.deployment = deployment
        self.url = deployment.base_url + "/chat/completions"
        self.policy = (policy or EgressPolicy()).only(self.url)
        self._max_bytes = max_response_bytes
        self._headers = {"Content-Type": "application/json"}
        if deployment.api_key:
            self._headers["Authorization"] = f"Bearer {deployment.api_key}"
        self._timeout = aiohttp.ClientTimeout(total=deployment.timeout_s, sock_connect=5.0)
        # A stream may last long; what must not last is a silence between two chunks.
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=5.0, sock_read=deployment.timeout_s
        )
        self._session: aiohttp.ClientSession | None = None
        # Complete answers take the lean client; streams the general one (see http1.py).
        self._http1 = Http1Pool(
            self.url,
            self._headers,
            policy=self.policy,
            max_connections=deployment.max_connections,
            max_bytes=max_response_bytes,
        )

    async def start(self) -> None:
        """Open the connection pools."""
        if self._session is None:
            self._session = client_session(
                self.deployment.max_connections,
                policy=self.policy,
                headers=self._headers,
                skip_auto_headers=("User-Agent",),
            )

    async def aclose(self) -> None:
        """Close the pools."""
        await self._http1.aclose()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise UpstreamError(self.deployment.name, 0, "the gateway is not started")
        return self._session

    async def complete(self, body: bytes) -> bytes:
        """POST ``body`` and return the provider's 200 answer, bounded in size."""
        name = self.deployment.name
        limit = self.deployment.timeout_s
        try:
            async with asyncio.timeout(limit):
                answer = await self._http1.post(body)
        except TimeoutError as exc:
            raise UpstreamError(name, 0, f"no answer within {limit:g} s") from exc
        except (Http1Error, EgressDeniedError) as exc:
            raise UpstreamError(name, 0, str(exc)) from exc
        if answer.status == 200:
            return answer.body
        # parse_retry_after reads the names as providers spell them.
        spelled = {"retry-after": "Retry-After", "retry-after-ms": "retry-after-ms"}
        headers = {spelled[k]: v for k, v in answer.headers.items()}
        text = answer.body[:300].decode("utf-8", "replace") or "(empty body)"
        retry_after = parse_retry_after(headers)
        raise UpstreamError(
            name, answer.status, f"answered {answer.status}: {text}",
            body=answer.body[:_ERROR_BODY_BYTES], retry_after=retry_after,
        )  # fmt: skip

    async def open_stream(self, body: bytes) -> aiohttp.ClientResponse:
        """POST a streaming ``body``; the caller reads the 200 answer and must close it."""
        name = self.deployment.name
        try:
            response = await self._pool().post(self.url, data=body, timeout=self._stream_timeout)
        except TimeoutError as exc:
            raise UpstreamError(name, 0, "no answer in time") from exc
        except EgressDeniedError as exc:
            raise UpstreamError(name, 0, str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(name, 0, f"{type(exc).__name__}: {exc}") from exc
        if response.status != 200:
            try:
                raise await _failure(name, response)
            finally:
                response.release()
        return response


async def _failure(name: str, response: aiohttp.ClientResponse) -> UpstreamError:
    try:
        body = await response.content.read(_ERROR_BODY_BYTES)
    except (aiohttp.ClientError, TimeoutError):
        body = b""
    retry_after = parse_retry_after(response.headers)
    text = body[:300].decode("utf-8", "replace") or "(empty body)"
    return UpstreamError(
        name, response.status, f"answered {response.status}: {text}", body=body,
        retry_after=retry_after,
    )  # fmt: skip
