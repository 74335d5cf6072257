"""The provider layer: named models over any OpenAI-compatible API, plus the offline demo.

OpenAI, DeepSeek, Qwen, Moonshot, vLLM and Ollama differ only in configuration (base URL,
key, model id), so one `AsyncOpenAI` client per model covers them all.
"""

import asyncio
import functools
import logging
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import httpx2
import openai
import orjson
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from chat.streaming.pacing import next_read_at
from chat.streaming.sse_reader import SSEDataParser

logger = logging.getLogger(__name__)

OFFLINE_MODEL_NAME = "offline-demo"


@dataclass(frozen=True)
class ModelSpec:
    name: str  # what clients send as "model"
    model_id: str  # what the upstream API calls it
    display_name: str
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    max_tokens: int = 2048
    timeout: float = 60.0
    max_retries: int = 0
    include_usage: bool = True
    offline: bool = False


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(slots=True)  # one per token: slots, not frozen (frozen makes __init__ slower)
class UpstreamChunk:
    """One step of an answer: text, and at the end the finish reason and token usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


class ProviderError(Exception):
    """An upstream failure, with the stable code clients see in the `error` event."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- Configuration ------------------------------------------------------------------------


def _spec_from_entry(entry: dict, *, fallback_name: str = "") -> ModelSpec:
    if not isinstance(entry, dict):
        raise ImproperlyConfigured("LLM_MODELS entries must be JSON objects")
    name = str(entry.get("name") or fallback_name)
    if not name:
        raise ImproperlyConfigured("every LLM_MODELS entry needs a name")
    api_key = entry.get("api_key", "")
    if entry.get("api_key_env"):
        from chatproject.env import env_str

        api_key = env_str(entry["api_key_env"])
        if not api_key:  # a misspelt name would otherwise send the key "none"
            raise ImproperlyConfigured(
                f"LLM_MODELS entry {name!r}: environment variable {entry['api_key_env']!r} "
                "(api_key_env) is not set"
            )
    try:
        return ModelSpec(
            name=name,
            model_id=str(entry.get("model") or name),
            display_name=str(entry.get("display_name") or name),
            base_url=str(entry.get("base_url") or settings.LLM_BASE_URL),
            api_key=str(api_key or "none"),  # local servers (Ollama, vLLM) accept any key
            max_tokens=int(entry.get("max_tokens", settings.LLM_MAX_TOKENS)),
            timeout=float(entry.get("timeout", settings.LLM_TIMEOUT_SECONDS)),
            max_retries=int(entry.get("max_retries", 0)),
            include_usage=bool(entry.get("include_usage", True)),
        )
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"LLM_MODELS entry {name!r}: {exc}") from None


def _offline_spec() -> ModelSpec:
    return ModelSpec(
        name=OFFLINE_MODEL_NAME, model_id=OFFLINE_MODEL_NAME, display_name="离线演示 Offline demo",
        offline=True,
    )  # fmt: skip


@functools.cache
def model_registry() -> dict[str, ModelSpec]:
    """Every model a client may ask for, by name, the default first."""
    specs: list[ModelSpec] = []
    configured = settings.LLM_MODELS
    if isinstance(configured, dict):
        specs += [_spec_from_entry(e, fallback_name=n) for n, e in configured.items()]
    elif isinstance(configured, list):
        specs += [_spec_from_entry(e) for e in configured]
    elif configured is not None:
        raise ImproperlyConfigured("LLM_MODELS must be a JSON list or object")
    if settings.LLM_API_KEY:
        specs.append(
            _spec_from_entry({"name": settings.LLM_MODEL, "api_key": settings.LLM_API_KEY})
        )
    if not specs or settings.LLM_OFFLINE:
        specs.append(_offline_spec())
    registry = {spec.name: spec for spec in specs}
    default = settings.LLM_DEFAULT_MODEL or specs[0].name
    if default not in registry:
        raise ImproperlyConfigured(f"LLM_DEFAULT_MODEL {default!r} is not a configured model")
    return {default: registry[default]} | registry


@receiver(setting_changed)
def _forget_registry(*, setting: str, **kwargs: object) -> None:
    if setting.startswith("LLM_"):
        model_registry.cache_clear()


def model_lookup(name: str | None) -> ModelSpec | None:
    registry = model_registry()
    if not name:
        return next(iter(registry.values()))
    return registry.get(name)


# --- Streaming ----------------------------------------------------------------------------

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


def provider_stream(
    spec: ModelSpec, messages: list[dict], *, read_every: float = 0.0
) -> AsyncIterator[list[UpstreamChunk]]:
    """The answer as it is generated, in batches: all that one read of the upstream
    brought. With `read_every` > 0 the upstream is read at most that often, on the ticks
    every answer of the process shares (the first read at once); what arrives in between
    waits in the HTTP client's buffer and comes back as one batch. Raises ProviderError on
    any upstream failure."""
    if spec.offline:
        from chat.streaming.offline import offline_stream

        return offline_stream(messages, read_every=read_every)
    # The generator itself, not wrapped in another: each batch passes one `yield`.
    return _openai_stream(spec, messages, read_every=read_every)


def _request_body(spec: ModelSpec, messages: list[dict]) -> dict:
    body = {
        "model": spec.model_id, "messages": messages, "max_tokens": spec.max_tokens, "stream": True,
    }  # fmt: skip
    if spec.include_usage:
        body["stream_options"] = {"include_usage": True}
    return body


async def _openai_stream(
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
