"""Paths of the history API, exactly as docs/api.md lists them (with or without the
trailing slash; the other form is a JSON 404 with a hint, chatproject/views.py)."""

from django.urls import path, register_converter

from chat import api


class DbIdConverter:
    """A positive id that fits a 64-bit column; longer digit runs are simply no match."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(DbIdConverter, "db_id")


sessions = api.SessionViewSet.as_view({"get": "page", "post": "create"})
session = api.SessionViewSet.as_view(
    {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
)

urlpatterns = [
    path("api/chat/sessions/", sessions, name="chat-sessions"),
    path("api/chat/sessions/<db_id:session_id>/", session, name="chat-session"),
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
