"""A bare ASGI app with no relay in it, for `bench.server_floor`: what is left of a
request's cost is the server software's own.

`POST /frames?n=K` reads the body, then writes K SSE frames shaped like the project's
delta events (event id, `{"text": ...}` with CJK text) back to back, and ends. With
`&tick_port=P` it connects to 127.0.0.1:P and writes each frame when a byte arrives
there: woken by data from another process, as a lone answer is woken by the model's.
`n=0` (or any other path) answers with the response start and an empty body.
"""

import asyncio
from urllib.parse import parse_qs

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
_FRAME = 'id: %d\nevent: delta\ndata: {"text":"您好，这是第%d段"}\n\n'


async def app(scope, receive, send):
    if scope["type"] != "http":  # no lifespan work: uvicorn carries on without it
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    count, tick_port = _frames_asked(scope)
    ticks = None
    if tick_port:
        ticks, _ = await asyncio.open_connection("127.0.0.1", tick_port)
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
    for number in range(1, count + 1):
        if ticks is not None:
            await ticks.readexactly(1)
        frame = (_FRAME % (number, number)).encode()
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body"})


def _frames_asked(scope) -> tuple[int, int]:
    if scope["path"] != "/frames":
        return 0, 0
    query = parse_qs(scope["query_string"].decode())
    return int(query.get("n", ["0"])[0]), int(query.get("tick_port", ["0"])[0])
