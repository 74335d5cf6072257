"""The baseline: the usual minimal relay, as a bare ASGI app (no Django, no auth, no DB).

    daphne bench.baseline_relay:app        uvicorn bench.baseline_relay:app

`POST /api/chat/stream` with the project's JSON body (`{"question": ...}`) calls
`openai.AsyncOpenAI(...).chat.completions.create(stream=True)` (the SDK's typed stream,
default httpx transport) and writes one SSE `data: {json}` event per chunk that has delta
text, then `data: {"type":"done","status":"done"}` and `data: [DONE]`. Everything the
project does besides relaying (bearer-token auth, saving question and answer, event ids,
resume log, Redis mirror, heartbeats) is absent, so the comparison favours the baseline.

Environment: `BENCH_UPSTREAM_URL` (the OpenAI-compatible base URL), `BENCH_MODEL`.
"""

import json
import os

import openai

_client: openai.AsyncOpenAI | None = None

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
_DONE = b'data: {"type":"done","status":"done"}\n\ndata: [DONE]\n\n'


def client() -> openai.AsyncOpenAI:
    global _client
    if _client is None:
        _client = openai.AsyncOpenAI(
            base_url=os.environ["BENCH_UPSTREAM_URL"], api_key="bench", max_retries=0, timeout=60
        )
    return _client


async def _read_body(receive) -> bytes:
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def _plain(send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/healthz":
        await _plain(send, 200, b'{"status":"ok"}')
        return
    if scope["path"] != "/api/chat/stream" or scope["method"] != "POST":
        await _plain(send, 404, b'{"error":{"code":"not_found"}}')
        return
    question = json.loads(await _read_body(receive))["question"]
    try:
        stream = await client().chat.completions.create(
            model=os.environ.get("BENCH_MODEL", "bench-model"),
            messages=[{"role": "user", "content": question}],
            stream=True,
        )
    except openai.OpenAIError as exc:
        await _plain(send, 502, json.dumps({"error": {"message": str(exc)}}).encode())
        return
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
    try:
        async with stream:
            async for chunk in stream:
                if not chunk.choices:
                    continue
                text = chunk.choices[0].delta.content
                if text:
                    data = json.dumps({"type": "delta", "text": text}, ensure_ascii=False)
                    body = f"data: {data}\n\n".encode()
                    await send({"type": "http.response.body", "body": body, "more_body": True})
    except openai.OpenAIError as exc:
        error = json.dumps({"type": "error", "message": str(exc)})
        await send({"type": "http.response.body", "body": f"data: {error}\n\n".encode()})
        return
    await send({"type": "http.response.body", "body": _DONE})
