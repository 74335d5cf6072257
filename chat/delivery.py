"""Delivery: the HTTP response that writes a generation's events as they appear.

Every frame is handed to the server the moment it exists (no buffering to the end), and a
`: ping` comment goes out after each quiet interval so proxies keep the connection open.
"""

from collections.abc import AsyncIterator

from django.conf import settings
from django.http import StreamingHttpResponse

from chat import events
from chat.generation import Generation


async def event_stream(generation: Generation) -> AsyncIterator[bytes]:
    """The generation's frames from the first on; leaving early detaches from it."""
    sent = 0
    generation.attach()
    try:
        while True:
            if sent < len(generation.frames):
                # Frames that piled up while the client was being written to go out as
                # one write; each is still a complete SSE frame.
                pending = generation.frames[sent:]
                sent += len(pending)
                yield b"".join(pending)
            elif generation.finished:
                return
            elif not await generation.wait_for_frames(
                after=sent, wait_seconds=settings.CHAT_PING_SECONDS
            ):
                yield events.PING_FRAME
    finally:
        # Runs on normal end and when the client disconnects (Django cancels us).
        generation.detach()


def event_stream_response(generation: Generation) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        event_stream(generation), content_type="text/event-stream; charset=utf-8"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each write straight through
    response["X-Record-Id"] = str(generation.record_id)
    return response
