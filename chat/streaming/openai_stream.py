"""The adapter to any OpenAI-compatible API through the official openai SDK's public
surface (LLM_HTTP_CLIENT=httpx): one `AsyncOpenAI` client per model and event loop, the raw
response of its documented `client.post`, read as bytes (httpx's `aiter_bytes`) on the
shared ticks. httpx reads the socket only when asked, so what the model sends between
ticks waits in the kernel and comes back in one read.
"""

import asyncio
import weakref
from collections.abc import AsyncIterator

import httpx2
import openai

from chat.streaming.chat_completions import (
    batch_from,
    more_text_follows,
    request_body,
    status_error,
)
from chat.streaming.pacing import next_read_at
from chat.streaming.sse_reader import SSEDataParser
from chat.streaming.upstream import ModelSpec, ProviderError, UpstreamChunk

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


async def openai_clients_close() -> None:
    """Close this event loop's SDK clients and their connections (at shutdown)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.close()


async def openai_stream(
    spec: ModelSpec, messages: list[dict], *, read_every: float
) -> AsyncIterator[list[UpstreamChunk]]:
    """The answer in batches, one per read (see `providers.provider_stream`)."""
    # The SDK's raw call (`client.post` with `cast_to=httpx.Response, stream=True`, its
    # documented way to any endpoint): the same client, auth, retries and error mapping as
    # `chat.completions.create`, without the typed params transform that cost ~0.4 ms of
    # CPU per question (bench/), and the body read as bytes instead of a pydantic object
    # per token.
    body = request_body(spec, messages)
    del messages  # sent once the request is; not kept for the answer's length
    try:
        response = await _client_for(spec).post(
            "/chat/completions", body=body, cast_to=httpx2.Response, stream=True,
            options=_NO_SDK_REQUEST_TELEMETRY,
        )  # fmt: skip
        del body
        loop, parser = asyncio.get_running_loop(), SSEDataParser()
        # Closed on every exit, cancellation included, so a stopped answer stops costing
        # tokens at once.
        try:
            async for raw in response.aiter_bytes():
                read_at = loop.time()
                batch, ended = batch_from(parser.feed(raw))
                if batch:
                    yield batch
                if ended:
                    return
                if read_every and more_text_follows(batch):
                    await asyncio.sleep(next_read_at(read_at, read_every) - loop.time())
        finally:
            await response.aclose()
    except (openai.OpenAIError, httpx2.HTTPError) as exc:
        raise _stream_error_from(exc) from exc


def _stream_error_from(exc: Exception) -> ProviderError:
    """The protocol's error for a failure while asking (the SDK's errors) or reading
    (httpx's, as they are: the body is read past the SDK's typed stream)."""
    if isinstance(exc, openai.APIStatusError):
        return status_error(exc.status_code, str(exc.code or ""), exc.message)
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError("upstream_timeout", "The model took too long to answer.")
    if isinstance(exc, openai.OpenAIError):
        return ProviderError("upstream_unavailable", "The model service could not be reached.")
    if isinstance(exc, httpx2.TimeoutException):
        return ProviderError("upstream_timeout", "The model went silent mid-answer.")
    return ProviderError("upstream_unavailable", "The model service dropped the answer.")
