from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from prometheus_client.django import PrometheusDjangoView

from chatproject.client_ip import client_ip
from chatproject.errors import error_response
from chatproject.metrics import metrics_allowed


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


class MetricsView(PrometheusDjangoView):
    """prometheus-client's view (this process, or every process of the host with
    PROMETHEUS_MULTIPROC_DIR), for allowed addresses only; others get a plain 404."""

    def dispatch(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase:
        if not metrics_allowed(client_ip(request)):
            return error_response("not_found", "No such endpoint.", status=404)
        return super().dispatch(request, *args, **kwargs)
