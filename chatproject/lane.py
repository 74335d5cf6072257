"""The stream lane at the ASGI level: the stream endpoints' requests skip Django's
per-request thread.

Django wraps every ASGI request in its own thread-sensitive context, so the first sync
call of a request (the `request_started` receivers, `response.close()`) starts a new
worker thread and the end of the request joins it: a thread per question. The stream
views call no thread-sensitive code (the database goes through `chatproject.db`), so
their requests run without that context and the few sync calls Django makes share the
process's one thread-sensitive thread. Everything else keeps Django's default.
"""

from django.core.handlers.asgi import ASGIHandler

from chatproject.middleware import stream_lane_match


class StreamLaneASGIHandler(ASGIHandler):
    async def __call__(self, scope, receive, send):
        await self.handle(scope, receive, send)


def with_stream_lane(django_app: ASGIHandler):
    """An ASGI app sending stream-endpoint requests through `StreamLaneASGIHandler`."""
    lane_app = StreamLaneASGIHandler()

    async def application(scope, receive, send):
        if scope["type"] == "http" and stream_lane_match(scope["path"]) is not None:
            return await lane_app(scope, receive, send)
        return await django_app(scope, receive, send)

    return application
