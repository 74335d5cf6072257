"""The stream lane at the ASGI level: what Django does per request and per chunk, cut to
what an answer stream needs.

- Django wraps every ASGI request in its own thread-sensitive context and sends the
  `request_started` / `request_finished` signals through it, so each question started a
  worker thread, hopped to it twice and joined it. The stream views touch no database
  connection of their own (their queries run on `chatproject.db`'s threads), so their
  requests skip the context and the signals (see `handle`).
- An event stream's frames go to the server as they are, one ASGI message each, instead
  of through three wrapping iterators and a chunker per frame.

Everything else keeps Django's default handler.
"""

import asyncio
import contextlib
from contextlib import aclosing

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import set_script_prefix

from chatproject.metrics import STREAMS_OPEN
from chatproject.middleware import stream_lane_match


class StreamLaneASGIHandler(ASGIHandler):
    async def __call__(self, scope, receive, send):
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        """Django's `handle` without the `request_started` / `request_finished` signals.

        Their receivers reset the query log and close stale connections of the request's
        thread; a stream request has none (its queries run on `chatproject.db`'s threads),
        and each signal costs a hop to a worker thread. The rest is Django's: read the
        body, build the request, run the view while listening for a disconnect.
        """
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            return

        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(self._respond(request, send)),
        ]
        del request  # see _respond
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                with contextlib.suppress(RequestAborted):
                    task.result()
            else:
                task.cancel()  # the view sees the disconnect as a cancellation
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not tasks[1].cancelled():
            _close_quietly(tasks[1].result())
        body_file.close()

    async def _respond(self, request, send):
        response = await self.run_get_response(request)
        if getattr(response, "event_frames", None) is not None:
            # The view has read the request; an answer streams for seconds or minutes, so
            # its request (body, headers, META) is released now rather than at the end.
            _release_resources(response)
            del request
        with contextlib.suppress(asyncio.CancelledError):  # the client left mid-send
            await self.send_response(response, send)
        return response

    async def send_response(self, response, send):
        frames = getattr(response, "event_frames", None)
        if frames is None:
            await super().send_response(response, send)
            return
        # Closed however the response ends, even if the client leaves before the first frame.
        async with aclosing(frames):
            await send(_response_start(response))
            STREAMS_OPEN.inc()
            try:
                async for frame in frames:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
            finally:
                STREAMS_OPEN.dec()
        await send({"type": "http.response.body"})


def _response_start(response) -> dict:
    # Built apart so that nothing of it stays referenced while the answer streams.
    headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
    return {"type": "http.response.start", "status": response.status_code, "headers": headers}


def _close_quietly(response) -> None:
    # HttpResponse.close() without its request_finished signal (see `handle`).
    _release_resources(response)
    response.closed = True


def _release_resources(response) -> None:
    # What HttpResponse.close() closes (Django adds the request's own close here).
    closers = getattr(response, "_resource_closers", [])
    for closer in closers:
        closer()
    closers.clear()


def with_stream_lane(django_app: ASGIHandler):
    """An ASGI app sending stream-endpoint requests through `StreamLaneASGIHandler`."""
    lane_app = StreamLaneASGIHandler()

    async def application(scope, receive, send):
        if scope["type"] == "http" and stream_lane_match(scope["path"]) is not None:
            return await lane_app(scope, receive, send)
        return await django_app(scope, receive, send)

    return application
