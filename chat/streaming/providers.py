"""The provider layer: an answer from whichever model a question names, as batches of
`UpstreamChunk`s: any OpenAI-compatible API or the offline demo
(`offline`), over aiohttp (`aiohttp_stream`, the default) or the openai SDK
(`openai_stream`, LLM_HTTP_CLIENT=httpx). Models come from configuration (`model_registry`)."""

from collections.abc import AsyncIterator

from django.conf import settings

from chat.streaming.aiohttp_stream import aiohttp_sessions_close, aiohttp_stream
from chat.streaming.offline import offline_stream
from chat.streaming.openai_stream import openai_clients_close, openai_stream
from chat.streaming.upstream import ModelSpec, UpstreamChunk


def provider_stream(
    spec: ModelSpec, messages: list[dict], *, read_every: float = 0.0
) -> AsyncIterator[list[UpstreamChunk]]:
    """The answer as it is generated, in batches: all that one read of the upstream
    brought. With `read_every` > 0 the upstream is read at most that often, on the ticks
    every answer of the process shares (the first read at once); what arrives in between
    waits in the HTTP client's buffer and comes back as one batch. Raises ProviderError on
    any upstream failure."""
    if spec.offline:
        return offline_stream(messages, read_every=read_every)
    # The generator itself, not wrapped in another: each batch passes one `yield`.
    if settings.LLM_HTTP_CLIENT == "aiohttp":
        return aiohttp_stream(spec, messages, read_every=read_every)
    return openai_stream(spec, messages, read_every=read_every)


async def clients_close() -> None:
    """Close this event loop's model clients and their connections (at shutdown)."""
    await aiohttp_sessions_close()
    await openai_clients_close()
