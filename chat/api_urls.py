"""Paths of the history API.

Django sends a path to one view, while the API has one APIView per action and several
actions on some paths (list and create sessions, say): `actions_route` puts them together
(and chat/openapi.py shows drf-spectacular each action on its own).
"""

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.urls import path, register_converter
from rest_framework.views import APIView

from chat import api


class DbIdConverter:
    """A positive id that fits a 64-bit column; longer digit runs are simply no match."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(DbIdConverter, "db_id")


class ActionRouter(APIView):
    """One path, one APIView per action: each method goes to its own view."""

    action_views: dict[str, Callable] = {}

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        method = "GET" if request.method == "HEAD" else request.method
        view = self.action_views.get(method)
        if view is None:
            # OPTIONS, or DRF's JSON 405 (after the usual 401 for a missing token).
            return super().dispatch(request, *args, **kwargs)
        response = view(request, *args, **kwargs)
        response["Allow"] = ", ".join(self.allowed_methods)
        return response

    @property
    def allowed_methods(self) -> list[str]:
        return [*self.action_views, "OPTIONS"]


def actions_route(**actions: type[APIView]) -> Callable:
    views = {method.upper(): view.as_view() for method, view in actions.items()}
    return type("ActionRouter", (ActionRouter,), {"action_views": views}).as_view()


urlpatterns = [
    path(
        "api/chat/sessions/",
        actions_route(get=api.SessionListApi, post=api.SessionCreateApi),
        name="chat-sessions",
    ),
    path(
        "api/chat/sessions/<db_id:session_id>/",
        actions_route(
            get=api.SessionDetailApi, patch=api.SessionRenameApi, delete=api.SessionDeleteApi
        ),
        name="chat-session",
    ),
    path(
        "api/chat/sessions/<db_id:session_id>/records/",
        api.RecordListApi.as_view(),
        name="chat-session-records",
    ),
    path("api/chat/records/bulk", api.RecordBulkSaveApi.as_view(), name="chat-records-bulk"),
    path("api/chat/records/<db_id:record_id>/", api.RecordDetailApi.as_view(), name="chat-record"),
    path(
        "api/chat/records/<db_id:record_id>/rating",
        api.RecordRateApi.as_view(),
        name="chat-record-rating",
    ),
    path("api/chat/search/", api.RecordSearchApi.as_view(), name="chat-search"),
]
