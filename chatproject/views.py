from django.http import HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt

from chatproject.errors import error_response


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _other_slash_form(path: str) -> str | None:
    other = path[:-1] if path.endswith("/") else path + "/"
    try:
        match = resolve(other)
    except Resolver404:
        return None
    return other if match.func is not api_not_found else None


@csrf_exempt
def api_not_found(request: HttpRequest) -> JsonResponse:
    message = f"No endpoint at {request.path}."
    other = _other_slash_form(request.path)
    if other:
        message += f" Did you mean {other}?"
    return error_response("not_found", message, status=404)
