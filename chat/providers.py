"""The provider layer: named models over any OpenAI-compatible API, plus the offline demo.

OpenAI, DeepSeek, Qwen, Moonshot, vLLM and Ollama differ only in configuration (base URL,
key, model id), so one `AsyncOpenAI` client per model covers them all.
"""

import asyncio
import contextlib
import functools
import logging
import os
import platform
import re
import socket
import sys
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

from chat.pacing import EARLIEST, LATEST, LonePace, next_read_at, reading_alone, reading_answer
from chat.sse_reader import SSEDataParser

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
    brought. With `read_every` > 0 the upstream is read at most that often (the first
    read at once); what arrives in between waits in the socket buffer and comes back as
    one batch. Raises ProviderError on any upstream failure."""
    if spec.offline:
        from chat.offline import offline_stream

        return offline_stream(messages, read_every=read_every)
    # The generator itself, not wrapped in another: each batch passes one `yield`.
    return _openai_stream(spec, messages, read_every=read_every)


# TimeoutError: aiohttp's read timeout, when the answer is read straight from aiohttp.
_UPSTREAM_FAILURES = (openai.OpenAIError, httpx2.HTTPError, aiohttp.ClientError, TimeoutError)


def _stream_error_from(exc: Exception) -> ProviderError:
    """The protocol's error for an upstream failure while asking or reading. The answer
    is read past the SDK, so its HTTP client's errors arrive as they are."""
    if isinstance(exc, openai.OpenAIError):
        return provider_error_from(exc)
    if isinstance(exc, httpx2.ReadTimeout | TimeoutError):
        return ProviderError("upstream_timeout", "The model went silent mid-answer.")
    return ProviderError("upstream_unavailable", "The model service dropped the answer.")


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
    # The SDK's raw call (`client.post`, documented for any endpoint): the same client,
    # auth, retries and error mapping as `chat.completions.create`, without the typed
    # params transform that cost ~0.4 ms of CPU per question (bench/). The response is
    # returned unread once its status has been checked.
    request_body = _request_body(spec, messages)
    del messages  # sent once the request is; not kept for the answer's length
    try:
        response = await _client_for(spec).post(
            "/chat/completions", body=request_body, cast_to=httpx2.Response, stream=True,
            options=_NO_SDK_REQUEST_TELEMETRY,
        )  # fmt: skip
        del request_body
        body, parser = UpstreamBody(response), SSEDataParser()
        del response  # see UpstreamBody: only what reading needs stays for the answer
        loop = asyncio.get_running_loop()
        pace = LonePace(read_every)
        # Closed on every exit, cancellation included, so a stopped answer stops costing
        # tokens at once.
        try:
            with reading_answer():
                while raw := await body.read():
                    read_at = loop.time()
                    batch: list[UpstreamChunk] = []
                    events = parser.feed(raw)
                    for data in events:
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
                        pace.record(read_at, len(events), len(raw))
                        if reading_alone() and pace.known and body.can_gate:
                            body.gate(
                                pace.gate_bytes(),
                                not_before=read_at + read_every * EARLIEST,
                                latest=read_at + read_every * LATEST,
                            )
                        else:
                            await body.hold_until(next_read_at(read_at, read_every))
        finally:
            await body.aclose()
    except _UPSTREAM_FAILURES as exc:
        raise _stream_error_from(exc) from exc


def _more_text_follows(batch: list[UpstreamChunk]) -> bool:
    # After the finish reason only the usage and `[DONE]` follow: read them at once.
    return any(chunk.text for chunk in batch) and not any(c.finish_reason for c in batch)


class UpstreamBody:
    """The response body as the socket delivers it, and a way to let it gather.

    Under the SDK's aiohttp transport the body is read straight from aiohttp's reader:
    the httpx layers on top add five async iterators per read (bench/). Any other
    transport, or a compressed body, is read through httpx. Reading from aiohttp, the
    httpx response (its request, body and headers, copied several times) is not kept:
    ~10 KB less per open answer (bench/)."""

    def __init__(self, response: httpx2.Response) -> None:
        self._resume_timer: asyncio.TimerHandle | None = None
        self._gated = False  # a gate is up for the coming read
        self._gate_not_before = 0.0
        self._gate_timer: asyncio.TimerHandle | None = None
        self._socket: socket.socket | None = None  # for the low-water mark only
        self._loop = asyncio.get_running_loop()
        self._silence_timer: asyncio.TimerHandle | None = None
        transport_stream = getattr(response.stream, "_stream", None)
        aiohttp_response = getattr(transport_stream, "_aiohttp_response", None)
        encoding = response.headers.get("content-encoding", "identity").lower()
        self.straight_from_aiohttp = aiohttp_response is not None and encoding == "identity"
        if self.straight_from_aiohttp:
            self._aiohttp_response = aiohttp_response
            self._reader = aiohttp_response.content
            connection = aiohttp_response.connection
            self._transport = connection.transport if connection is not None else None
            if connection is not None and connection.protocol is not None:
                self._watch_silence(connection.protocol)
        else:
            self._response = response
            self._chunks = aiter(response.aiter_bytes())
            self._transport = None

    @property
    def can_gate(self) -> bool:
        return _GATES_WORK and self.straight_from_aiohttp and self._transport is not None

    def _watch_silence(self, protocol: aiohttp.client_proto.ResponseHandler) -> None:
        """The model's silence limit (its read timeout), kept by one timer per answer
        that looks at when data last came, instead of aiohttp's: it cancels and creates
        a timer on every read (~2.5% of the relay's CPU at N=500, bench/ --profile)."""
        self._silence_limit = protocol.read_timeout
        if not self._silence_limit:
            return
        protocol.read_timeout = None  # aiohttp's timer is not armed again
        self._last_data_at = self._loop.time()
        self._silence_timer = self._loop.call_at(
            self._last_data_at + self._silence_limit, self._silence_check
        )

    def _silence_check(self) -> None:
        ends_at = self._last_data_at + self._silence_limit
        if self._loop.time() < ends_at:  # data came meanwhile
            self._silence_timer = self._loop.call_at(ends_at, self._silence_check)
            return
        self._silence_timer = None
        # What aiohttp's own timer would raise to the read.
        self._reader.set_exception(aiohttp.SocketTimeoutError("the model went silent"))

    async def aclose(self) -> None:
        """Release the connection (back to the pool once the body was read whole)."""
        if self._silence_timer is not None:
            self._silence_timer.cancel()
        if self._resume_timer is not None:  # stopped while paused: read on, then release
            self._resume_timer.cancel()
            self._resume()
        if self._gated:  # stopped during a gated read: its timer goes too
            self._lift_gate()
        if self._socket is not None:
            self._socket.close()  # the duplicate only: the connection stays open
        if self.straight_from_aiohttp:
            # What the SDK's transport does when the httpx response is closed.
            await self._aiohttp_response.__aexit__(None, None, None)
        else:
            await self._response.aclose()

    async def read(self) -> bytes:
        """All bytes that arrived since the last read (waiting for some); b"" at the end."""
        if self.straight_from_aiohttp:
            data = await self._reader.readany()
            self._last_data_at = self._loop.time()
            if self._gated:
                await self._after_gate()
            return data
        return await anext(self._chunks, b"")

    def gate(self, min_bytes: int, *, not_before: float, latest: float) -> None:
        """Let the next read come once `min_bytes` have arrived, woken by the data
        itself rather than by a timer (on these machines a timer wake-up of an idle
        process costs about twice as much). The kernel keeps the socket quiet until
        then (its receive low-water mark; EOF and errors still come at once). Never
        before `not_before`: a read that comes earlier (a burst) waits for it. Never
        after `latest`: then the mark drops and whatever arrived is read."""
        if min_bytes > 1:
            try:
                self._set_low_water_mark(min_bytes)
            except OSError:  # the connection is going: the read will tell
                return
            self._gate_timer = self._loop.call_at(latest, self._drop_gate)
        self._gated, self._gate_not_before = True, not_before

    def _drop_gate(self) -> None:
        self._gate_timer = None
        if not self._transport.is_closing():
            with contextlib.suppress(OSError):
                self._set_low_water_mark(1)  # the kernel reports what it holds at once

    def _lift_gate(self) -> None:
        self._gated = False
        if self._gate_timer is not None:
            self._gate_timer.cancel()
            self._drop_gate()

    def _set_low_water_mark(self, size: int) -> None:
        if self._socket is None:
            # A socket object of our own, on a duplicate of the connection's descriptor:
            # uvloop's stand-in for the transport's socket builds a new Python socket,
            # and asks the kernel for its address, on every call (two per gated read).
            fd = self._transport.get_extra_info("socket").fileno()
            self._socket = socket.socket(fileno=os.dup(fd))
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, size)

    async def _after_gate(self) -> None:
        """Lift the gate after its read. A read that came before the gate's `not_before`
        (a burst) is held until then, the socket paused: what arrives meanwhile waits in
        the kernel for the next read, and so does an error or the end."""
        self._lift_gate()
        early = self._gate_not_before - self._loop.time()
        if early <= 0:
            return
        self._transport.pause_reading()
        try:
            await asyncio.sleep(early)
        finally:
            if not self._transport.is_closing():
                self._transport.resume_reading()

    async def hold_until(self, resume_at: float) -> None:
        """Read nothing until `resume_at` (event-loop time): what the upstream sends
        meanwhile waits in the kernel's socket buffer and comes back in one read.
        aiohttp reads in the background, so its socket is paused and a timer resumes
        it: the next `read` is the only wait, one task wake-up per read instead of two
        (bench/). If the upstream drops meanwhile, everything it sent is still read
        before the error. httpx reads only when asked, so that path just sleeps."""
        if resume_at <= self._loop.time():
            return
        transport = self._transport
        if transport is None or transport.is_closing():
            await asyncio.sleep(resume_at - self._loop.time())
            return
        transport.pause_reading()
        self._resume_timer = self._loop.call_at(resume_at, self._resume)

    def _resume(self) -> None:
        self._resume_timer = None
        if not self._transport.is_closing():
            self._transport.resume_reading()


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


def _kernel_gates_reads() -> bool:
    # Linux 4.18+ keeps a socket below its receive low-water mark out of epoll's ready
    # list, and reports it as soon as the mark is lowered; elsewhere the tick pacing
    # (which needs neither) is used for every answer.
    if sys.platform != "linux":
        return False
    version = tuple(int(part) for part in re.findall(r"\d+", platform.release())[:2])
    return version >= (4, 18)


_GATES_WORK = _kernel_gates_reads()
