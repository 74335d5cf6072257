"""The adapter to any OpenAI-compatible API, through the official openai SDK's public
surface: one `AsyncOpenAI` client per model and event loop, the raw response of its
documented `client.post`, read as bytes (httpx's `aiter_bytes`) on shared ticks.
"""

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator

import aiohttp
import httpx2
import openai
import orjson
from django.conf import settings

from chat.streaming.pacing import next_read_at
from chat.streaming.sse_reader import SSEDataParser
from chat.streaming.upstream import ModelSpec, ProviderError, UpstreamChunk, Usage

logger = logging.getLogger(__name__)


# One client (one connection pool) per model and event loop: pools cannot cross loops.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, openai.AsyncOpenAI]]" = (
    weakref.WeakKeyDictionary()
)


def _client_for(spec: ModelSpec) -> openai.AsyncOpenAI:
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    client = per_loop.get(spec.name)
    if client is None:
        client = openai.AsyncOpenAI(
            base_url=spec.base_url,
            api_key=spec.api_key,
            timeout=spec.timeout,
            max_retries=spec.max_retries,
            http_client=_http_client(),
            default_headers=_NO_SDK_TELEMETRY,
        )
        per_loop[spec.name] = client
    return client


# The SDK's own telemetry, sent to every provider with every question unless omitted:
# the OS, architecture, Python and SDK versions, async or not. No provider needs them;
# without them (and the two per-request ones below) a question is 9 headers lighter to
# build and send, and an open answer's request ~2 KB smaller (bench/, memory).
_NO_SDK_TELEMETRY = {
    name: openai.Omit()
    for name in (
        "X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-OS",
        "X-Stainless-Arch", "X-Stainless-Runtime", "X-Stainless-Runtime-Version",
        "X-Stainless-Async",
    )
}  # fmt: skip
_NO_SDK_REQUEST_TELEMETRY = {
    "headers": {"X-Stainless-Retry-Count": openai.Omit(), "X-Stainless-Read-Timeout": openai.Omit()}
}


async def clients_close() -> None:
    """Close this event loop's model clients and their connections (at shutdown)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.close()


def _http_client() -> httpx2.AsyncClient | None:
    # The SDK's aiohttp transport reads sockets in bulk: far less CPU per token than the
    # default pure-Python HTTP stack (see bench/).
    if settings.LLM_HTTP_CLIENT == "aiohttp":
        return openai.DefaultAioHttpClient()
    return None


def provider_error_from(exc: openai.OpenAIError) -> ProviderError:
    """Map the SDK's exceptions to the stable codes of the wire protocol."""
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError("upstream_timeout", "The model took too long to answer.")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError("upstream_unavailable", "The model service could not be reached.")
    if isinstance(exc, openai.RateLimitError):
        return ProviderError("rate_limited", "The model service is busy; try again shortly.")
    if isinstance(exc, openai.APIStatusError):
        if str(exc.code or "") in _CONTENT_BLOCK_CODES:
            return ProviderError("content_blocked", "The model declined this content.")
        if exc.status_code >= 500:
            return ProviderError("upstream_unavailable", "The model service is unavailable.")
        logger.warning("upstream refused the request: %s %s", exc.status_code, exc.message)
        return ProviderError("upstream_error", "The model service refused the request.")
    return ProviderError("upstream_error", "The model service failed.")


_CONTENT_BLOCK_CODES = {"content_filter", "content_policy_violation", "data_inspection_failed"}


def _request_body(spec: ModelSpec, messages: list[dict]) -> dict:
    body = {
        "model": spec.model_id, "messages": messages, "max_tokens": spec.max_tokens, "stream": True,
    }  # fmt: skip
    if spec.include_usage:
        body["stream_options"] = {"include_usage": True}
    return body


async def openai_stream(
    spec: ModelSpec, messages: list[dict], *, read_every: float
) -> AsyncIterator[list[UpstreamChunk]]:
    # The SDK's raw call (`client.post` with `cast_to=httpx.Response, stream=True`, its
    # documented way to any endpoint): the same client, auth, retries and error mapping as
    # `chat.completions.create`, without the typed params transform that cost ~0.4 ms of
    # CPU per question (bench/), and the body read as bytes (httpx's public
    # `aiter_bytes`) instead of a pydantic object per token.
    request_body = _request_body(spec, messages)
    del messages  # sent once the request is; not kept for the answer's length
    try:
        response = await _client_for(spec).post(
            "/chat/completions", body=request_body, cast_to=httpx2.Response, stream=True,
            options=_NO_SDK_REQUEST_TELEMETRY,
        )  # fmt: skip
        del request_body
        loop, parser = asyncio.get_running_loop(), SSEDataParser()
        # Closed on every exit, cancellation included, so a stopped answer stops costing
        # tokens at once.
        try:
            async for raw in response.aiter_bytes():
                read_at = loop.time()
                batch: list[UpstreamChunk] = []
                for data in parser.feed(raw):
                    if data == b"[DONE]":
                        if batch:
                            yield batch
                        return
                    chunk = _chunk_from(orjson.loads(data))
                    if chunk is not None:
                        batch.append(chunk)
                if batch:
                    yield batch
                if read_every and _more_text_follows(batch):
                    # Meanwhile the HTTP client buffers what comes: the next read takes it all.
                    await asyncio.sleep(next_read_at(read_at, read_every) - loop.time())
        finally:
            await response.aclose()
    except (openai.OpenAIError, httpx2.HTTPError, aiohttp.ClientError, TimeoutError) as exc:
        raise _stream_error_from(exc) from exc


def _more_text_follows(batch: list[UpstreamChunk]) -> bool:
    # After the finish reason only the usage and `[DONE]` follow: read them at once.
    return any(chunk.text for chunk in batch) and not any(c.finish_reason for c in batch)


def _stream_error_from(exc: Exception) -> ProviderError:
    """The protocol's error for an upstream failure while asking or reading.

    The body is read past the SDK's typed stream, so the HTTP client's own errors arrive
    as they are. Under the aiohttp transport, aiohttp's error (the cause of whatever the
    SDK and httpx made of it) says best what happened: the transport reports a refused
    or dropped connection as a *connect timeout*, which is neither what a user should be
    told nor a reason to wait longer."""
    if isinstance(exc, openai.APIStatusError):
        return provider_error_from(exc)
    before_headers = isinstance(exc, openai.OpenAIError)  # past them, errors come as they are
    cause = _aiohttp_cause(exc)
    if cause is not None:
        timed_out = isinstance(cause, TimeoutError)  # aiohttp's timeouts are TimeoutErrors
    else:
        timed_out = isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException | TimeoutError)
    if timed_out and before_headers:
        return ProviderError("upstream_timeout", "The model took too long to answer.")
    if timed_out:
        return ProviderError("upstream_timeout", "The model went silent mid-answer.")
    if before_headers:
        return ProviderError("upstream_unavailable", "The model service could not be reached.")
    return ProviderError("upstream_unavailable", "The model service dropped the answer.")


def _aiohttp_cause(exc: BaseException) -> aiohttp.ClientError | None:
    """The aiohttp error at the root of `exc` (each layer raises its own `from` it)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, aiohttp.ClientError):
            return seen
        seen = seen.__cause__
    return None


def _chunk_from(payload: dict) -> UpstreamChunk | None:
    if payload.get("error"):
        error = payload["error"]
        code = str(error.get("code") or "") if isinstance(error, dict) else ""
        if code in _CONTENT_BLOCK_CODES:
            raise ProviderError("content_blocked", "The model declined this content.")
        raise ProviderError("upstream_error", "The model service reported an error mid-answer.")
    raw_usage = payload.get("usage")
    usage = None
    if raw_usage:
        usage = Usage(raw_usage.get("prompt_tokens"), raw_usage.get("completion_tokens"))
    choices = payload.get("choices")
    if not choices:
        return UpstreamChunk(usage=usage) if usage else None
    choice = choices[0]
    text = (choice.get("delta") or {}).get("content") or ""
    finish_reason = choice.get("finish_reason")
    if text or finish_reason or usage:
        return UpstreamChunk(text=text, finish_reason=finish_reason, usage=usage)
    return None
