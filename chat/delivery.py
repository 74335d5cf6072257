"""Delivery: the HTTP response that writes an answer's events as they appear.

Every frame is handed to the server the moment it exists (no buffering to the end), and a
`: ping` comment goes out after each quiet interval so proxies keep the connection open.
A response reads either the generation in this process or, with Redis, the log that the
generating process mirrors there (a resume that landed on another process).
"""

from collections.abc import AsyncIterator

from django.conf import settings
from django.http import StreamingHttpResponse

from chat import eventbus, events
from chat.generation import Generation


async def event_stream(generation: Generation, *, after: int = 0) -> AsyncIterator[bytes]:
    """The generation's frames after event id `after`; leaving early detaches from it."""
    sent, delivered_done = after, False
    generation.attach()
    try:
        while True:
            if sent < len(generation.log):
                # Frames that piled up while the client was being written to go out as
                # one write; each is still a complete SSE frame.
                pending = generation.log.frames_after(sent)
                sent += len(pending)
                delivered_done = pending[-1] == events.DONE_FRAME
                yield b"".join(pending)
            elif generation.finished:
                if not delivered_done:
                    # The client claimed an id past the end: it has every event.
                    yield events.DONE_FRAME
                return
            elif not await generation.wait_for_frames(after=sent):
                yield events.PING_FRAME
    finally:
        # Runs on normal end and when the client disconnects (Django cancels us).
        generation.detach()


class EventStreamResponse(StreamingHttpResponse):
    """A StreamingHttpResponse whose frames the stream lane's ASGI handler may write
    without Django's per-chunk wrappers (`chatproject/lane.py`); any other handler
    streams it as usual."""

    def __init__(self, frames: AsyncIterator[bytes], **kwargs) -> None:
        super().__init__(frames, **kwargs)
        self.event_frames = frames


def _sse_response(content: AsyncIterator[bytes], record_id: int) -> StreamingHttpResponse:
    response = EventStreamResponse(content, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each write straight through
    response["X-Record-Id"] = str(record_id)
    return response


def event_stream_response(generation: Generation, *, after: int = 0) -> StreamingHttpResponse:
    return _sse_response(event_stream(generation, after=after), generation.record_id)


def mirrored_stream_response(record_id: int, *, after: int) -> StreamingHttpResponse:
    frames = eventbus.read_log(record_id, after=after, ping_seconds=settings.CHAT_PING_SECONDS)
    return _sse_response(frames, record_id)
