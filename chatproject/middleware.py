"""Middleware that keeps API answers JSON and event streams unbuffered."""

import functools
import logging
from http import HTTPStatus

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.gzip import GZipMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, resolve
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


# The answer streams: plain async views that authenticate by bearer token, check their own
# bodies (after the token), need no session, cookie, CSRF or message machinery, and are
# called once per question.
STREAM_URL_NAMES = frozenset({"chat-stream", "record-events", "record-stop"})

# What the lane stands in for, or what has nothing to do on a stream: the stack the
# project configures below the lane. Anything else configured below it is skipped on
# streams, and the system check chat.W002 names it (chat/checks.py).
STREAM_LANE_STANDS_IN_FOR = frozenset({
    "chatproject.middleware.ApiJsonErrorsMiddleware",  # its errors are JSON already
    "chatproject.middleware.api_messages_in_english",  # its messages are English literals
    "django.middleware.security.SecurityMiddleware",  # applied: HTTPS redirect, headers
    "chatproject.middleware.GZipExceptEventStreamMiddleware",  # never compresses a stream
    "django.contrib.sessions.middleware.SessionMiddleware",  # bearer tokens, no cookie
    "django.middleware.common.CommonMiddleware",  # applied: ALLOWED_HOSTS; paths exact
    "django.middleware.csrf.CsrfViewMiddleware",  # the views are csrf_exempt (no cookie)
    "django.contrib.auth.middleware.AuthenticationMiddleware",  # bearer tokens
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",  # applied
    "chatproject.middleware.ContentSecurityPolicyMiddleware",  # HTML only
    "chatproject.middleware.ApiErrorMiddleware",  # applied: an exception is a JSON 500
    "chatproject.middleware.ApiRequestBodyMiddleware",  # the views check their own bodies
})  # fmt: skip
STREAM_LANE = "chatproject.middleware.StreamLaneMiddleware"


def stream_lane_skips() -> list[str]:
    """The configured middleware that a stream never passes through (below the lane)."""
    if STREAM_LANE not in settings.MIDDLEWARE:
        return []
    return settings.MIDDLEWARE[settings.MIDDLEWARE.index(STREAM_LANE) + 1 :]


class StreamLaneMiddleware:
    """The answer streams go from here straight to their view; every other request goes
    on through the rest of the stack.

    Under ASGI each hook of a sync middleware (all of Django's own) is a hop to a worker
    thread: through the whole stack a question cost 1.3-1.5x the CPU per token, and its
    first token came 30-330 ms later at N=100 (bench/, `--compare`). Middleware listed
    above this one run on streams too (a request id, CORS, an APM); below it, what it
    stands in for (`STREAM_LANE_STANDS_IN_FOR`): the host check (ALLOWED_HOSTS), the HTTPS
    redirect, the security headers, JSON errors. Anything else below it is named by the
    system check chat.W002. Django's handler and its request signals are as usual.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
        # The stack's header-only steps (no hop to a thread), and its HTTPS redirect.
        security = SecurityMiddleware(get_response)
        self._https_redirect = security.process_request
        self._header_steps = [
            security.process_response,
            XFrameOptionsMiddleware(get_response).process_response,
        ]

    def __call__(self, request: HttpRequest):
        if not self._async:
            return self.get_response(request)
        return self._call_async(request)

    async def _call_async(self, request: HttpRequest):
        match = _stream_match(request.path_info)
        if match is None:
            return await self.get_response(request)
        response = _host_refused(request) or self._https_redirect(request)
        if response is None:
            try:
                response = await match.func(request, *match.args, **match.kwargs)
            except Exception:
                response = unhandled_error_response(request)
        for header_step in self._header_steps:
            response = header_step(request, response)
        return response


def _host_refused(request: HttpRequest) -> JsonResponse | None:
    """ALLOWED_HOSTS, as CommonMiddleware checks it for every other request."""
    try:
        request.get_host()
    except DisallowedHost as error:
        logging.getLogger("django.security.DisallowedHost").error(str(error))
        return error_response(*_STATUS_ERRORS[400], status=400)
    return None


def _stream_match(path: str):
    if not path.startswith("/api/chat/"):
        return None
    return _stream_resolve(path)


# Every question is resolved twice (here, then by Django's handler for anything else)
# against the whole URLconf; the same few paths come back all the time.
@functools.lru_cache(maxsize=1024)
def _stream_resolve(path: str):
    try:
        match = resolve(path)
    except Resolver404:
        return None
    return match if match.url_name in STREAM_URL_NAMES else None


@receiver(setting_changed)
def _forget_resolved_paths(*, setting: str, **kwargs: object) -> None:
    if setting == "ROOT_URLCONF":
        _stream_resolve.cache_clear()
