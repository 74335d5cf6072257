"""The stream lane at the ASGI level: what Django does per request and per chunk, cut to
what an answer stream needs.

- Django wraps every ASGI request in its own thread-sensitive context, so the first sync
  call of a request (the `request_started` receivers, `response.close()`) starts a new
  worker thread and the end of the request joins it: a thread per question. The stream
  views call no thread-sensitive code (the database goes through `chatproject.db`), so
  their requests run without that context and the few sync calls Django makes share the
  process's one thread-sensitive thread.
- An event stream's frames go to the server as they are, one ASGI message each, instead
  of through three wrapping iterators and a chunker per frame.

Everything else keeps Django's default handler.
"""

from contextlib import aclosing

from django.core.handlers.asgi import ASGIHandler

from chatproject.middleware import stream_lane_match


class StreamLaneASGIHandler(ASGIHandler):
    async def __call__(self, scope, receive, send):
        await self.handle(scope, receive, send)

    async def send_response(self, response, send):
        frames = getattr(response, "event_frames", None)
        if frames is None:
            await super().send_response(response, send)
            return
        headers = [
            (name.encode("ascii"), value.encode("latin1")) for name, value in response.items()
        ]
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        async with aclosing(frames):
            async for frame in frames:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body"})


def with_stream_lane(django_app: ASGIHandler):
    """An ASGI app sending stream-endpoint requests through `StreamLaneASGIHandler`."""
    lane_app = StreamLaneASGIHandler()

    async def application(scope, receive, send):
        if scope["type"] == "http" and stream_lane_match(scope["path"]) is not None:
            return await lane_app(scope, receive, send)
        return await django_app(scope, receive, send)

    return application
