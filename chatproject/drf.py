"""DRF, made to speak the project's one language of errors and bodies.

- Exceptions answer `{"error": {"code", "message"}}` with a documented code.
- JSON bodies come through `chatproject.request_body` (size limit per view, orjson), as the
  stream endpoints' bodies do.
- JSON is all the API speaks; see `JsonOnlyNegotiation`.
"""

from typing import IO, Any

from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_default_handler

from chatproject.errors import ApplicationError, error_body
from chatproject.metrics import error_count
from chatproject.request_body import json_body_read

_DRF_CODES = {
    drf_exceptions.NotAuthenticated: "not_authenticated",
    drf_exceptions.AuthenticationFailed: "invalid_token",
    drf_exceptions.PermissionDenied: "permission_denied",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.NotAcceptable: "not_acceptable",
    drf_exceptions.ParseError: "malformed_json",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.Throttled: "rate_limited",
    drf_exceptions.ValidationError: "invalid_input",
}
_NOT_ACCEPTABLE = "This API answers only application/json; send Accept: application/json."


def drf_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, reshaped so DRF views answer like every other endpoint."""
    if isinstance(exc, ApplicationError):
        error_count(where="http", code=exc.code)
        body = error_body(exc.code, exc.message, **exc.extra)
        return Response(body, status=exc.status, headers=exc.headers)
    response = drf_default_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    error_count(where="http", code=code)
    if isinstance(exc, drf_exceptions.ValidationError):
        response.data = error_body(code, "Some fields are invalid.", fields=response.data)
    elif isinstance(exc, drf_exceptions.NotAcceptable):
        response.data = error_body(code, _NOT_ACCEPTABLE)
    else:
        detail = getattr(exc, "detail", str(exc))
        response.data = error_body(code, str(detail))
    return response


class JsonParser(BaseParser):
    """The JSON body `ApiRequestBodyMiddleware` read and parsed (within the view's limit)."""

    media_type = "application/json"

    def parse(
        self, stream: IO[bytes], media_type: str | None = None, parser_context: dict | None = None
    ) -> Any:
        request = (parser_context or {})["request"]._request
        if not hasattr(request, "json_body"):  # a view called without the middleware
            request.json_body = json_body_read(request, view=parser_context["view"])
        return request.json_body


class JsonOnlyNegotiation(DefaultContentNegotiation):
    """JSON for every Accept that admits it, and for `Accept: text/event-stream` too: SSE
    clients (httpx-sse) set it on the headers a client reuses for its plain calls.
    Anything else (`application/xml`) is `406 not_acceptable`, in JSON."""

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except drf_exceptions.NotAcceptable:
            if "text/event-stream" not in request.META.get("HTTP_ACCEPT", ""):
                raise
            return renderers[0], renderers[0].media_type


def _no_surrogates(value: str) -> None:
    # JSON may carry "\ud800"; neither SQLite nor PostgreSQL can store a lone surrogate.
    if any("\ud800" <= char <= "\udfff" for char in value):
        raise serializers.ValidationError("Text must be valid Unicode.")


class TextField(serializers.CharField):
    """A CharField for text only (DRF's turns 12 into "12"), which the database can always
    store (no NUL, no lone surrogates)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators.append(_no_surrogates)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        # The limit holds for what was sent, before trimming (as the OpenAPI schema and the
        # stream's question say), so "\x1e" + 120 characters is too long.
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)
