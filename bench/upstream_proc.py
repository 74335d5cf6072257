"""A lean OpenAI-compatible streaming upstream for the benchmark, in its own process.

    python -m bench.upstream_proc [--port 0]     # prints {"url": ..., "pid": ...} on stdout

Why not `tests.support.upstream.FakeUpstream`: it paces every token with a 10 ms polling
loop (to notice clients that hang up) and writes through aiohttp's StreamResponse. Measured
here (200 streams x 60 tokens at 30 tokens/s, same load generator) it costs ~100 µs of CPU
per token against ~40 µs for this server, so at 1,000 streams x 30 tokens/s it alone would
need ~3 cores of this 2-core machine, and its lateness would show up as the relay's. This
one speaks the same wire format (`chat.completion.chunk` events, `x_emitted_at`, usage
chunk, `data: [DONE]`) on a bare asyncio protocol (uvloop) with one timer per token. Most
of what is left is the kernel's: one loopback TCP write per token.

What the benchmark needs from it:

- Pace and length per request, read from the last user message: `rate=30 n=60` (tokens
  per second, tokens). Token i is scheduled at request arrival + (i + 1) / rate, on an
  absolute schedule (no drift); the first content token therefore comes one pace after
  the request, exactly as from FakeUpstream.
- Every token's text carries its own emission time: a short CJK/ASCII piece followed by
  `[[<microseconds since the epoch>]]`, stamped when the chunk is written. The load
  generator finds these markers in whatever arrives (one event or several coalesced) and
  computes receive time minus emission time per token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import secrets
import signal
import sys
import time

PIECES = [
    "你好", "，", "这是", "流式", "回答", "。", " The", " quick", " 模型", "正在",
    "输出", " tokens", "，", "每个", "都", "带", "时间", "戳", " ok", "！",
]  # fmt: skip

_RATE_RE = re.compile(r"rate=(\d+(?:\.\d+)?)")
_COUNT_RE = re.compile(r"\bn=(\d+)")
_TICK = 0.002

_HEADERS = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n"
)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(payload: dict) -> bytes:
    return _chunk(b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n")


def _last_user_text(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else ""
    return ""


class Stats:
    streams = 0
    tokens = 0
    aborted = 0


class UpstreamProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: one request at a time per connection (as httpx sends)."""

    def __init__(self, default_rate: float, default_count: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.default_rate = default_rate
        self.default_count = default_count
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.busy = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
            Stats.aborted += 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next_request()

    def _next_request(self) -> None:
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buffer[:head_end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        start = head_end + 4
        if len(self.buffer) < start + length:
            return
        body, self.buffer = self.buffer[start : start + length], self.buffer[start + length :]
        method, path, *_ = head[0].split(" ")
        if method == "GET" and path == "/healthz":
            self._simple(200, b'{"status":"ok"}')
        elif method != "POST" or not path.endswith("/chat/completions"):
            self._simple(404, b'{"error":{"message":"not found","type":"invalid_request_error"}}')
        else:
            self._stream(json.loads(body))

    def _simple(self, status: int, body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (status, len(body), body)
        )
        if self.buffer:
            self._next_request()

    def _stream(self, body: dict) -> None:
        assert self.transport is not None
        text = _last_user_text(body)
        rate_match, count_match = _RATE_RE.search(text), _COUNT_RE.search(text)
        rate = float(rate_match.group(1)) if rate_match else self.default_rate
        count = int(count_match.group(1)) if count_match else self.default_count
        self.busy = True
        Stats.streams += 1
        self.pace = 1.0 / rate
        self.count = count
        self.sent = 0
        self.started = self.loop.time()
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.base = {
            "id": f"chatcmpl-{secrets.token_hex(12)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model"),
        }
        # Every content chunk is this JSON with only the text and the time filled in;
        # formatting it by hand keeps the upstream's CPU per token small.
        head = json.dumps({**self.base, "choices": [{"index": 0, "delta": {"content": ""}}]})
        cut = head.index('"content": ""') + len('"content": ')
        self.token_head = b"data: " + head[:cut].encode()
        self.token_tail = b'}, "finish_reason": null}], "x_emitted_at": %.6f}\n\n'
        request_id = b"x-request-id: req_%s\r\n\r\n" % secrets.token_hex(8).encode()
        self.transport.write(
            _HEADERS + request_id + self._event({"role": "assistant", "content": ""}, None)
        )
        self._schedule()

    def _schedule(self) -> None:
        # Deadlines rounded up to the next 2 ms: thousands of streams then share loop
        # wake-ups instead of each waking it alone (the emission time is stamped anyway).
        due = self.started + (self.sent + 1) * self.pace
        self.timer = self.loop.call_at(math.ceil(due / _TICK) * _TICK, self._tick)

    def _event(self, delta: dict, finish_reason: str | None) -> bytes:
        payload = {
            **self.base,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            "x_emitted_at": time.time(),
        }
        return _sse(payload)

    def _tick(self) -> None:
        self.timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        now = time.time()
        piece = PIECES[self.sent % len(PIECES)]
        token = json.dumps(f"{piece}[[{int(now * 1_000_000)}]]", ensure_ascii=False).encode()
        out = _chunk(self.token_head + token + self.token_tail % now)
        self.sent += 1
        Stats.tokens += 1
        if self.sent < self.count:
            transport.write(out)
            self._schedule()
            return
        out += self._event({}, "stop")
        if self.include_usage:
            usage = {"prompt_tokens": 11, "completion_tokens": self.count}
            usage["total_tokens"] = usage["prompt_tokens"] + self.count
            out += _sse({**self.base, "choices": [], "usage": usage, "x_emitted_at": now})
        out += _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
        transport.write(out)
        self.busy = False
        if self.buffer:
            self._next_request()


async def serve(port: int, rate: float, count: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(rate, count), "127.0.0.1", port, backlog=4096
    )
    actual = server.sockets[0].getsockname()[1]
    print(json.dumps({"url": f"http://127.0.0.1:{actual}/v1", "pid": os.getpid()}), flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    server.close()
    print(
        json.dumps({"streams": Stats.streams, "tokens": Stats.tokens, "aborted": Stats.aborted}),
        file=sys.stderr,
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=30.0, help="default tokens/s")
    parser.add_argument("--tokens", type=int, default=60, help="default tokens per answer")
    args = parser.parse_args()
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    try:
        import uvloop

        uvloop.run(serve(args.port, args.rate, args.tokens))
    except ImportError:
        asyncio.run(serve(args.port, args.rate, args.tokens))


if __name__ == "__main__":
    main()
