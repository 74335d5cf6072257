"""DRF's exceptions, answered in the project's one error shape."""

from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_default_handler

from chatproject.errors import ApplicationError, error_body

_DRF_CODES = {
    drf_exceptions.NotAuthenticated: "not_authenticated",
    drf_exceptions.AuthenticationFailed: "invalid_token",
    drf_exceptions.PermissionDenied: "permission_denied",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.ParseError: "malformed_json",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.Throttled: "rate_limited",
    drf_exceptions.ValidationError: "invalid_input",
}


def drf_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, reshaped so DRF views answer like every other endpoint."""
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message), status=exc.status)
    response = drf_default_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, drf_exceptions.ValidationError):
        response.data = error_body(code, "Some fields are invalid.", fields=response.data)
    else:
        detail = getattr(exc, "detail", str(exc))
        response.data = error_body(code, str(detail))
    return response
