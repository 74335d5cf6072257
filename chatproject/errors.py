"""The one error shape every endpoint answers with: `{"error": {"code", "message"}}`."""

from django.http import JsonResponse

from chatproject.metrics import error_count


class ApplicationError(Exception):
    """A failure the client caused or can act on, with a stable machine code; `extra`
    fields go into the error object, `headers` onto the response."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = 400,
        extra: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra or {}
        self.headers = headers or {}


def error_body(code: str, message: str, **extra: object) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(code: str, message: str, *, status: int, **extra: object) -> JsonResponse:
    error_count(where="http", code=code)
    response = JsonResponse(error_body(code, message, **extra), status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def application_error_response(error: ApplicationError) -> JsonResponse:
    response = error_response(error.code, error.message, status=error.status, **error.extra)
    for name, value in error.headers.items():
        response[name] = value
    return response
