"""The adapter to any OpenAI-compatible API over aiohttp's public client API
(LLM_HTTP_CLIENT=aiohttp, the default): the leanest read of an answer (bench/).

One `aiohttp.ClientSession` per event loop (its pool serves every model). A question is
one POST in the chat-completions wire format (`chat_completions`), with the SDK's
retries (`max_retries`: a refused connection, 408, 409, 429 and 5xx, with its backoff);
errors map to the protocol's codes as the SDK's do.

Coalescing without read-ahead: between the shared ticks the answer's connection is
paused (asyncio's `Transport.pause_reading`, on `ClientResponse.connection.transport`,
both public), so what the model sends waits in the kernel and comes back in one read and
one parse at the tick, instead of one wake-up of the event loop per packet (~0.9x the
CPU per token at N=100, bench/ `--compare`). If the model drops the connection
meanwhile, everything it sent is still read before the error.
"""

import asyncio
import random
import weakref
from collections.abc import AsyncIterator

import aiohttp
import openai
import orjson

from chat.streaming.chat_completions import (
    batch_from,
    more_text_follows,
    request_body,
    status_error,
)
from chat.streaming.pacing import next_read_at
from chat.streaming.sse_reader import SSEDataParser
from chat.streaming.upstream import ModelSpec, ProviderError, UpstreamChunk

_sessions: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession]" = (
    weakref.WeakKeyDictionary()
)
# What the SDK sends (no telemetry headers): providers see the same client either way.
_USER_AGENT = f"AsyncOpenAI/Python {openai.__version__}"
_RETRIED_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


def _session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        # The SDK's pool limits (1000 connections, keep-alive 5 s).
        connector = aiohttp.TCPConnector(limit=1000, keepalive_timeout=5)
        session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        _sessions[loop] = session
    return session


async def aiohttp_sessions_close() -> None:
    """Close this event loop's session and its connections (at shutdown)."""
    session = _sessions.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()


async def aiohttp_stream(
    spec: ModelSpec, messages: list[dict], *, read_every: float
) -> AsyncIterator[list[UpstreamChunk]]:
    """The answer in batches, one per read (see `providers.provider_stream`)."""
    body = orjson.dumps(request_body(spec, messages))
    del messages  # sent once the request is; not kept for the answer's length
    try:
        response = await _response(spec, body)
        del body
        # Closed on every exit, cancellation included, so a stopped answer stops costing
        # tokens at once (released to the pool once the body was read whole).
        async with response:
            async for batch in _batches(response, read_every):
                yield batch
    except aiohttp.ClientPayloadError as exc:  # the body was cut short
        raise ProviderError(
            "upstream_unavailable", "The model service dropped the answer."
        ) from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _read_error(exc) from exc


async def _batches(
    response: aiohttp.ClientResponse, read_every: float
) -> AsyncIterator[list[UpstreamChunk]]:
    loop, parser, reader = asyncio.get_running_loop(), SSEDataParser(), response.content
    pause = _ReadPause(response)
    try:
        while raw := await reader.readany():
            read_at = loop.time()
            batch, ended = batch_from(parser.feed(raw))
            if batch:
                yield batch
            if ended:
                return
            if read_every and more_text_follows(batch):
                await pause.until(next_read_at(read_at, read_every))
    finally:
        pause.end()


class _ReadPause:
    """Holds the connection's reading until a tick: a timer resumes it, and the next read
    is the only wait (one task wake-up per read, not two)."""

    __slots__ = ("_loop", "_timer", "_transport")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        connection = response.connection
        self._transport = connection.transport if connection is not None else None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None

    async def until(self, resume_at: float) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            await asyncio.sleep(resume_at - self._loop.time())
            return
        transport.pause_reading()
        self._timer = self._loop.call_at(resume_at, self._resume)

    def _resume(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def end(self) -> None:
        """Stopped while paused: resume, so the connection is read to its end or closed."""
        if self._timer is not None:
            self._timer.cancel()
            self._resume()


async def _response(spec: ModelSpec, body: bytes) -> aiohttp.ClientResponse:
    """The response once its status is OK, retried as the SDK retries; else the error."""
    headers = {
        "Authorization": f"Bearer {spec.api_key}", "Content-Type": "application/json",
        "Accept": "application/json", "User-Agent": _USER_AGENT,
    }  # fmt: skip
    # The model's timeout bounds the connect and each silence, not the answer's length.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=spec.timeout, sock_read=spec.timeout)
    url = spec.base_url.rstrip("/") + "/chat/completions"
    for attempt in range(spec.max_retries + 1):
        last = attempt == spec.max_retries
        try:
            response = await _session().post(url, data=body, headers=headers, timeout=timeout)
        except (aiohttp.ClientError, TimeoutError) as exc:
            if last:
                raise ProviderError(*_before_answer(exc)) from exc
        else:
            if response.status < 400:
                return response
            if last or response.status not in _RETRIED_STATUSES:
                raise await _status_error(response)
            response.release()
        await asyncio.sleep(_backoff(attempt))
    raise AssertionError("unreachable")


def _before_answer(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutErrors
        return "upstream_timeout", "The model took too long to answer."
    return "upstream_unavailable", "The model service could not be reached."


def _read_error(exc: BaseException) -> ProviderError:
    if isinstance(exc, TimeoutError):
        return ProviderError("upstream_timeout", "The model went silent mid-answer.")
    return ProviderError("upstream_unavailable", "The model service dropped the answer.")


async def _status_error(response: aiohttp.ClientResponse) -> ProviderError:
    async with response:
        try:
            error = orjson.loads(await response.read()).get("error") or {}
        except (aiohttp.ClientError, orjson.JSONDecodeError, AttributeError, TimeoutError):
            error = {}
    if not isinstance(error, dict):
        error = {}
    return status_error(response.status, str(error.get("code") or ""), str(error.get("message")))


def _backoff(attempt: int) -> float:
    # The SDK's: 0.5 s doubling up to 8 s, less up to a quarter at random.
    return min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random())
