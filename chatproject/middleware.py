"""Middleware that keeps API answers JSON and event streams unbuffered."""

import logging
from http import HTTPStatus

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.middleware.gzip import GZipMiddleware
from django.utils import translation
from django.utils.decorators import sync_and_async_middleware
from django.utils.deprecation import MiddlewareMixin

from chatproject.errors import ApplicationError, application_error_response, error_response
from chatproject.request_body import json_body_read
from chatproject.views import api_not_found

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


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


@sync_and_async_middleware
def api_messages_in_english(get_response):
    """API messages are English whatever LANGUAGE_CODE gives the admin: clients show
    their own words per `code` (docs/protocol.md), so `message` is for developers."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest):
            if not is_api(request):
                return await get_response(request)
            with translation.override("en"):
                return await get_response(request)

    else:

        def middleware(request: HttpRequest):
            if not is_api(request):
                return get_response(request)
            with translation.override("en"):
                return get_response(request)

    return middleware


# What a non-JSON error under /api/ becomes (Django's own pages: a bad Host header, a CSRF
# failure, an error raised in a middleware); anything else keeps its status's name.
_STATUS_ERRORS = {
    400: ("bad_request", "The request is malformed."),
    403: ("permission_denied", "This request is not allowed."),
    404: ("not_found", "No such endpoint."),
    405: ("method_not_allowed", "This method is not allowed here."),
    413: ("payload_too_large", "The request body is too large."),
    500: ("internal_error", "Something went wrong on our side."),
}


class ApiJsonErrorsMiddleware(MiddlewareMixin):
    """Outermost: no /api/ path ever answers an HTML error page, whatever raised it."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase):
        if not is_api(request) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        status = response.status_code
        code, message = _STATUS_ERRORS.get(
            status, (HTTPStatus(status).phrase.lower().replace(" ", "_"), HTTPStatus(status).phrase)
        )
        json_response = error_response(code, message, status=status)
        for header in ("Allow", "Retry-After"):
            if header in response:
                json_response[header] = response[header]
        return json_response


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """An HTML page without a policy of its own gets `CONTENT_SECURITY_POLICY`: no inline
    script anywhere (the admin and Swagger UI need none)."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase):
        if "Content-Security-Policy" in response:
            return response
        if response.get("Content-Type", "").startswith("text/html"):
            response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY
        return response


class ApiErrorMiddleware(MiddlewareMixin):
    """An unexpected exception under /api/ becomes a JSON 500, not Django's HTML page."""

    def process_exception(self, request: HttpRequest, exception: Exception):
        if not is_api(request):
            return None
        return unhandled_error_response(request)


class ApiRequestBodyMiddleware(MiddlewareMixin):
    """An /api/ body is within its endpoint's limit and, if JSON, parses, or the request
    ends here with `413 payload_too_large` / `400 malformed_json`, whatever the view does
    with it (chatproject/request_body.py). The parsed body waits in `request.json_body`."""

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if not is_api(request) or view_func is api_not_found:
            return None  # a wrong path's 404 (with its slash hint) matters more than its body
        if request.resolver_match.url_name in STREAM_URL_NAMES:
            return None  # the stream views check their own bodies (after the token)
        try:
            request.json_body = json_body_read(request, view=view_func_class(view_func))
        except ApplicationError as error:
            return application_error_response(error)
        return None


def view_func_class(view_func):
    """The class of a class-based view (where limits are declared), else the function."""
    return getattr(view_func, "view_class", view_func)


def unhandled_error_response(request: HttpRequest) -> JsonResponse:
    """Log the exception being handled; answer the client a JSON 500."""
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return error_response("internal_error", "Something went wrong on our side.", status=500)


# The answer streams: plain async views that check their own bodies, after the token.
STREAM_URL_NAMES = frozenset({"chat-stream", "record-events", "record-stop"})
