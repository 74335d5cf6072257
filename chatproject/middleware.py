"""Middleware that keeps API answers JSON and event streams unbuffered."""

import logging

from django.http import HttpRequest, HttpResponseBase
from django.middleware.gzip import GZipMiddleware
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
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response("internal_error", "Something went wrong on our side.", status=500)
