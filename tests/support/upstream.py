"""A scriptable, OpenAI-compatible upstream that tests run on a loopback port.

Tests drive the real ``openai.AsyncOpenAI`` SDK against it over a real socket, so timeouts,
connection drops and client disconnects behave exactly as they would in production.

Usage::

    with FakeUpstream() as upstream:
        scenario = upstream.script(tokens=["Hel", "lo"], pace=0.05)
        client = openai.AsyncOpenAI(base_url=upstream.base_url, api_key="test", max_retries=0)
        # ... put ``scenario.tag`` anywhere in the last user message ...
        assert scenario.wait_finished(2.0)
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.servers import BackgroundServer

__all__ = ["TAG_RE", "FakeUpstream", "Scenario"]

#: Matches a scenario tag inside message text.
TAG_RE = re.compile(r"scn-[0-9a-f]{6,}")

# How often a waiting handler checks whether the client has gone away.
_POLL_INTERVAL = 0.01

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}
_DEFAULT_ERROR_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}


def _new_tag() -> str:
    return f"scn-{secrets.token_hex(4)}"


@dataclass(eq=False)
class Scenario:
    """One scripted upstream behaviour plus everything recorded while serving it.

    The server thread writes the recording fields while the test thread reads them, hence
    ``threading.Event`` for the flags and a lock around the mutable containers.
    """

    tokens: list[str] = field(default_factory=lambda: ["Hello", ",", " world", "!"])
    pace: float = 0.01
    # Tokens per second on a fixed schedule (pace adds each token's write to its wait): a
    # test that needs the model's real rate, e.g. 200 tokens/s, sets this instead of pace.
    rate: float | None = None
    status: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    stall: float = 0.0
    stall_after_headers: float = 0.0
    stall_after_tokens: int | None = None  # silent for `stall_mid` s after this many tokens
    stall_mid: float = 0.0
    drop_after: int | None = None
    finish_reason: str = "stop"
    end_without_finish: bool = False
    prompt_tokens: int = 11
    headers: dict[str, str] = field(default_factory=dict)
    tag: str = field(default_factory=_new_tag)

    # Recording.
    requests: list[dict[str, Any]] = field(default_factory=list)
    request_headers: list[dict[str, str]] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    first_token_sent: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    aborted: threading.Event = field(default_factory=threading.Event)
    dropped: threading.Event = field(default_factory=threading.Event)
    tokens_sent: int = 0
    token_sent_at: list[float] = field(default_factory=list)  # time.monotonic(), latest request
    closed_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def text(self) -> str:
        """The full reply this scenario streams when it runs to completion."""
        return "".join(self.tokens)

    @property
    def last_request(self) -> dict[str, Any]:
        with self._lock:
            return self.requests[-1]

    def wait_started(self, timeout: float) -> bool:
        return self.started.wait(timeout)

    def wait_finished(self, timeout: float) -> bool:
        return self.finished.wait(timeout)

    def wait_aborted(self, timeout: float) -> bool:
        return self.aborted.wait(timeout)

    def _record(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(body)
            self.request_headers.append(headers)
        self.started.set()


# Scenario fields a test may set through script(); the rest is recording state.
_SCRIPT_OPTIONS = frozenset(
    {
        "tokens",
        "pace",
        "rate",
        "status",
        "error_code",
        "error_message",
        "stall",
        "stall_after_headers",
        "stall_after_tokens",
        "stall_mid",
        "drop_after",
        "finish_reason",
        "end_without_finish",
        "prompt_tokens",
        "headers",
    }
)


class FakeUpstream(BackgroundServer):
    """aiohttp server on 127.0.0.1:<free port> running in a daemon thread with its own loop."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._lock = threading.Lock()
        self._scenarios: dict[str, Scenario] = {}
        self._handlers: set[asyncio.Task[Any]] = set()
        self.aborted_streams = 0
        #: Serves any request whose last user message carries no known tag.
        self.default = Scenario(tokens=["This", " is", " the", " default", " reply."])

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start serving; returns once the socket is listening."""
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        self._thread = threading.Thread(target=self._run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("FakeUpstream did not start within 10s")
        if self._startup_error is not None:
            raise RuntimeError("FakeUpstream failed to start") from self._startup_error

    def stop(self) -> None:
        """Cancel in-flight handlers, close the socket and join the thread. Idempotent."""
        thread, loop, stop = self._thread, self._loop, self._stop_requested
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        self._thread = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeUpstream is not running")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}/v1"

    # -- scripting ---------------------------------------------------------------------------

    def script(self, **options: Any) -> Scenario:
        """Register a scenario (see ``Scenario`` fields for options) and return it.

        Put ``scenario.tag`` in the last user message to have a request served by it.
        """
        bad = options.keys() - _SCRIPT_OPTIONS
        if bad:
            raise TypeError(f"unknown script() options: {sorted(bad)}")
        scenario = Scenario(**options)
        with self._lock:
            self._scenarios[scenario.tag] = scenario
        return scenario

    @contextmanager
    def serving_untagged(self, **options: Any) -> Iterator[Scenario]:
        """Answer questions that carry no tag with this scenario while the block runs (a page
        whose screenshots show the questions wants them without a tag)."""
        scenario = self.script(**options)
        saved, self.default = self.default, scenario
        try:
            yield scenario
        finally:
            self.default = saved

    @property
    def default_requests(self) -> list[dict[str, Any]]:
        return self.default.requests

    # -- server internals --------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced to start() if it happens during startup
            self._startup_error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop_requested = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        # Short shutdown timeout: stop() cancels handlers itself; never wait 60s for a stall.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, 0)
            await site.start()
            self._port = runner.addresses[0][1]
            self._ready.set()
            await self._stop_requested.wait()
            for task in list(self._handlers):
                task.cancel()
        finally:
            await runner.cleanup()

    def _select(self, body: dict[str, Any]) -> Scenario:
        text = _last_user_text(body.get("messages"))
        with self._lock:
            for tag in TAG_RE.findall(text):
                if tag in self._scenarios:
                    return self._scenarios[tag]
        return self.default

    def _mark_aborted(self, scenario: Scenario) -> None:
        if scenario.aborted.is_set():
            return
        scenario.closed_at = time.monotonic()
        scenario.aborted.set()
        with self._lock:
            self.aborted_streams += 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            try:
                body = await request.json()
            except ValueError:
                return _error_response(400, "Request body is not valid JSON", None)
            if not isinstance(body, dict):
                return _error_response(400, "Request body must be a JSON object", None)
            scenario = self._select(body)
            scenario._record(body, dict(request.headers))
            return await self._respond(request, body, scenario)
        finally:
            self._handlers.discard(task)

    async def _respond(
        self, request: web.Request, body: dict[str, Any], scn: Scenario
    ) -> web.StreamResponse:
        if scn.stall and not await _linger(request, scn.stall):
            self._mark_aborted(scn)
            return web.Response(status=499)  # never reaches the client; keeps aiohttp happy
        if scn.status is not None:
            resp = _error_response(
                scn.status,
                scn.error_message or f"Fake upstream error {scn.status}",
                scn.error_code or _DEFAULT_ERROR_CODES.get(scn.status),
            )
            resp.headers.update(scn.headers)
            return await self._send_whole(request, resp, scn)
        if body.get("stream"):
            return await self._stream(request, body, scn)
        return await self._complete(request, body, scn)

    async def _send_whole(
        self, request: web.Request, resp: web.StreamResponse, scn: Scenario
    ) -> web.StreamResponse:
        # Prepare + write_eof here (instead of letting aiohttp do it) so `finished` is exact.
        try:
            await resp.prepare(request)
            await resp.write_eof()
        except ConnectionError:
            self._mark_aborted(scn)
        else:
            scn.finished.set()
        return resp

    async def _complete(
        self, request: web.Request, body: dict[str, Any], scn: Scenario
    ) -> web.StreamResponse:
        if not await _linger(request, scn.pace * len(scn.tokens)):
            self._mark_aborted(scn)
            return web.Response(status=499)
        if scn.drop_after is not None:
            _drop(request, scn)
            return web.Response(status=499)
        scn.tokens_sent = len(scn.tokens)
        payload = {
            "id": _completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": scn.text},
                    "finish_reason": None if scn.end_without_finish else scn.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": _usage(scn),
            "x_emitted_at": time.time(),
        }
        resp = web.json_response(payload, headers={**_base_headers(), **scn.headers})
        return await self._send_whole(request, resp, scn)

    async def _stream(
        self, request: web.Request, body: dict[str, Any], scn: Scenario
    ) -> web.StreamResponse:
        headers = {
            **_base_headers(),
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            **scn.headers,
        }
        resp = web.StreamResponse(status=200, headers=headers)
        completion_id = _completion_id()
        created = int(time.time())
        model = body.get("model")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        scn.tokens_sent = 0
        scn.token_sent_at = []

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }

        try:
            # StreamResponse.prepare flushes the status line and headers immediately.
            await resp.prepare(request)
            if scn.stall_after_headers and not await _linger(request, scn.stall_after_headers):
                self._mark_aborted(scn)
                return resp
            await _emit(resp, chunk({"role": "assistant", "content": ""}))
            started = time.monotonic()
            for sent, token in enumerate(scn.tokens):
                if scn.drop_after is not None and sent >= scn.drop_after:
                    _drop(request, scn)
                    return resp
                if sent == scn.stall_after_tokens and not await _linger(request, scn.stall_mid):
                    self._mark_aborted(scn)
                    return resp
                wait = scn.pace
                if scn.rate is not None:
                    wait = max(0.0, started + (sent + 1) / scn.rate - time.monotonic())
                if not await _linger(request, wait):
                    self._mark_aborted(scn)
                    return resp
                await _emit(resp, chunk({"content": token}))
                # Counts the latest request only, so a retried scenario starts again from 0.
                scn.tokens_sent = sent + 1
                scn.token_sent_at.append(time.monotonic())
                scn.first_token_sent.set()
            if scn.drop_after is not None:  # drop_after >= len(tokens): cut before the finish
                _drop(request, scn)
                return resp
            if not scn.end_without_finish:
                await _emit(resp, chunk({}, scn.finish_reason))
            if include_usage:
                usage_chunk = {**chunk({}), "choices": [], "usage": _usage(scn)}
                await _emit(resp, usage_chunk)
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionError:  # includes aiohttp.ClientConnectionResetError
            self._mark_aborted(scn)
            return resp
        scn.finished.set()
        return resp


async def _emit(resp: web.StreamResponse, payload: dict[str, Any]) -> None:
    # Stamped at write time so a benchmark can measure upstream-to-client latency.
    payload["x_emitted_at"] = time.time()
    await resp.write(f"data: {json.dumps(payload)}\n\n".encode())


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _linger(request: web.Request, seconds: float) -> bool:
    """Sleep ``seconds`` while watching the socket; False as soon as the client has gone.

    aiohttp does not cancel handlers on disconnect, and an idle handler never writes, so
    polling the transport is the only way to notice a client that hung up mid-wait.
    """
    deadline = time.monotonic() + seconds
    while True:
        if _client_gone(request):
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        await asyncio.sleep(min(_POLL_INTERVAL, remaining))


def _drop(request: web.Request, scn: Scenario) -> None:
    # Abort mid-body: the client sees an incomplete chunked message, as on a network failure.
    if request.transport is not None:
        request.transport.abort()
    scn.closed_at = time.monotonic()
    scn.dropped.set()


def _last_user_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):  # multi-part content: [{"type": "text", "text": ...}]
            return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
        return ""
    return ""


def _usage(scn: Scenario) -> dict[str, int]:
    completion = len(scn.tokens)
    return {
        "prompt_tokens": scn.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": scn.prompt_tokens + completion,
    }


def _completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


def _base_headers() -> dict[str, str]:
    return {"x-request-id": f"req_{secrets.token_hex(16)}"}


def _error_response(status: int, message: str, code: str | None) -> web.Response:
    error_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    headers = _base_headers()
    if status == 429:
        headers["retry-after"] = "0"
    return web.json_response(body, status=status, headers=headers)
