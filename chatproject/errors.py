"""The one error shape every endpoint answers with: `{"error": {"code", "message"}}`."""

from django.http import JsonResponse


class ApplicationError(Exception):
    """A failure the client caused or can act on, with a stable machine code."""

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def error_body(code: str, message: str, **extra: object) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(code: str, message: str, *, status: int, **extra: object) -> JsonResponse:
    response = JsonResponse(error_body(code, message, **extra), status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def application_error_response(error: ApplicationError) -> JsonResponse:
    return error_response(error.code, error.message, status=error.status)
