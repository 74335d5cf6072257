"""Delivery: the HTTP response that writes an answer's events as they appear.

Every frame is handed to the server the moment it exists (no buffering to the end), and a
`: ping` comment goes out after each quiet interval so proxies keep the connection open.
A response reads either the generation in this process or, with Redis, the log that the
generating process mirrors there (a resume that landed on another process).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from django.conf import settings
from django.http import StreamingHttpResponse

from chat.streaming import eventbus, events, lifecycle
from chat.streaming.generation import Generation
from chatproject.metrics import STREAMS_OPEN


class EventStream:
    """One response's reading of a generation's frames after event id `after`.

    It holds the generation from the moment it exists until its last frame, the client's
    hang-up (Django cancels the read), or its response is closed or dropped unread: a
    response that a hang-up cancels before it ever reads still lets go of its answer,
    whose grace period then runs as for any dropped client."""

    __slots__ = ("_delivered_done", "_generation", "_loop", "_sent")

    def __init__(self, generation: Generation, *, after: int) -> None:
        self._generation: Generation | None = generation
        self._sent = after
        self._delivered_done = False
        self._loop = asyncio.get_running_loop()

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> bytes:
        generation = self._generation
        if generation is None:
            raise StopAsyncIteration
        try:
            while True:
                if self._sent < len(generation.log):
                    # Frames that piled up while the client was being written to go out as
                    # one write; each is still a complete SSE frame.
                    pending = generation.log.frames_after(self._sent)
                    self._sent += len(pending)
                    self._delivered_done = pending[-1] == events.DONE_FRAME
                    return b"".join(pending)
                if generation.finished:
                    if self._delivered_done:
                        raise StopAsyncIteration
                    self._delivered_done = True  # the client claimed an id past the end
                    return events.DONE_FRAME
                if not await generation.wait_for_frames(after=self._sent):
                    return events.PING_FRAME
        except BaseException:  # the end, or the client left (Django cancels us)
            self._let_go()
            raise

    async def aclose(self) -> None:
        self._let_go()

    def close(self) -> None:
        """Django's `response.close()` (run in a worker thread) and the collector: the
        generation is the event loop's, so it is let go there."""
        if self._generation is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to let go
                self._loop.call_soon_threadsafe(self._let_go)

    __del__ = close

    def _let_go(self) -> None:
        if self._generation is not None:
            self._generation.detach()
            self._generation = None


async def _counted(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The frames, counted in `chat_streams_open` while they are written."""
    STREAMS_OPEN.inc()
    try:
        async for frame in frames:
            yield frame
    finally:
        STREAMS_OPEN.dec()


def _sse_response(content: AsyncIterator[bytes], record_id: int) -> StreamingHttpResponse:
    # Django's own streaming response, through the configured middleware and the request
    # signals like any other response; each frame goes to the server as it is produced.
    response = StreamingHttpResponse(
        _counted(content), content_type="text/event-stream; charset=utf-8"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each write straight through
    response["X-Record-Id"] = str(record_id)
    return response


def answer_response(generation: Generation) -> StreamingHttpResponse:
    """The asker's response: it takes over the hold `generation_start` took for it."""
    return _sse_response(EventStream(generation, after=0), generation.record_id)


def resumed_response(generation: Generation, *, after: int) -> StreamingHttpResponse:
    generation.attach()
    return _sse_response(EventStream(generation, after=after), generation.record_id)


def mirrored_stream_response(record_id: int, *, after: int) -> StreamingHttpResponse:
    """A resume on a process that does not generate the answer: its log in Redis, ended
    for the reader if the generating process is found gone (`lifecycle`)."""

    async def on_quiet() -> None:
        await lifecycle.answer_end_if_lost(record_id)

    frames = eventbus.read_log(
        record_id, after=after, ping_seconds=settings.CHAT_PING_SECONDS, on_quiet=on_quiet
    )
    return _sse_response(frames, record_id)
