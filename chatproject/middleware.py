"""Middleware that keeps API answers JSON and event streams unbuffered."""

import functools
import logging

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.middleware.gzip import GZipMiddleware
from django.urls import Resolver404, resolve
from django.utils.deprecation import MiddlewareMixin

from chatproject.errors import error_response

logger = logging.getLogger("chatproject.api")


class GZipExceptEventStreamMiddleware(GZipMiddleware):
    """Gzip for pages and JSON, never for Server-Sent Events.

    Compressing an event stream makes the compressor hold bytes back until its block
    fills, which turns a live typing effect into one lump at the end.
    """

    def process_response(self, request: HttpRequest, response: HttpResponseBase):
        if response.get("Content-Type", "").startswith("text/event-stream"):
            return response
        return super().process_response(request, response)


class ApiErrorMiddleware(MiddlewareMixin):
    """An unexpected exception under /api/ becomes a JSON 500, not Django's HTML page."""

    def process_exception(self, request: HttpRequest, exception: Exception):
        if not request.path.startswith("/api/"):
            return None
        return unhandled_error_response(request)


def unhandled_error_response(request: HttpRequest) -> JsonResponse:
    """Log the exception being handled; answer the client a JSON 500."""
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return error_response("internal_error", "Something went wrong on our side.", status=500)


# The answer streams: plain async views that authenticate by bearer token, need no session,
# cookie, CSRF or message machinery, and are called once per question.
STREAM_LANE_URL_NAMES = frozenset({"chat-stream", "record-events", "record-stop"})


class StreamLaneMiddleware:
    """First in the stack: the stream endpoints go straight to their view.

    Under ASGI every sync middleware hook costs a hop to a worker thread; with Django's
    stack that was a quarter of the CPU a question costs (bench/). Everything else goes
    through the full stack as usual.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if not self._async:
            return self.get_response(request)
        return self._call_async(request)

    async def _call_async(self, request: HttpRequest):
        match = stream_lane_match(request.path_info)
        if match is None:
            return await self.get_response(request)
        try:
            response = await match.func(request, *match.args, **match.kwargs)
        except Exception:
            return unhandled_error_response(request)
        response["X-Content-Type-Options"] = "nosniff"
        return response


def stream_lane_match(path: str):
    if not path.startswith("/api/chat/"):
        return None
    return _stream_lane_resolve(path)


# Every question is resolved twice (the ASGI router, then this middleware) against the
# whole URLconf; the same few paths come back all the time.
@functools.lru_cache(maxsize=1024)
def _stream_lane_resolve(path: str):
    try:
        match = resolve(path)
    except Resolver404:
        return None
    return match if match.url_name in STREAM_LANE_URL_NAMES else None


@receiver(setting_changed)
def _forget_resolved_paths(*, setting: str, **kwargs: object) -> None:
    if setting == "ROOT_URLCONF":
        _stream_lane_resolve.cache_clear()
