"""The history API: sessions, records, search, ratings and the web-view handoff.

One APIView per action: each parses, calls one selector (chat/selectors.py) or service
(chat/services.py, chat/handoff.py), and shapes the answer. chat/api_urls.py puts the actions
that share a path on it. The contract, with examples, is docs/api.md.
"""

from collections import Counter
from datetime import UTC
from typing import Any

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.handoff import MAX_ITEMS, handoff_save
from chat.models import ChatRecord
from chat.openapi import errors
from chat.selectors import (
    record_get,
    record_list,
    record_search,
    session_attach_previews,
    session_get,
    session_get_detail,
    session_list,
)
from chat.serializers import (
    MAX_DB_ID,
    ErrorDetailOutput,
    HandoffItemSerializer,
    RecordOutput,
    SearchHitOutput,
    SessionOutput,
)
from chat.services import record_rate, session_create, session_rename, session_soft_delete
from chatproject.drf import TextField
from chatproject.errors import ApplicationError

# Generous for 200 items of chat text (JSON escapes included), small enough that a stray
# upload cannot tie up a worker parsing it; DATA_UPLOAD_MAX_MEMORY_SIZE is set to it.
BULK_BODY_MAX_BYTES = 8 * 1024 * 1024

# --- Paging ---------------------------------------------------------------------------------


class Pages(CursorPagination):
    """Opaque cursors over a fixed ordering: stable while new rows arrive."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request: Request) -> int:
        # Strict, like every other input: a typo should not silently mean "20".
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            message = f"A whole number from 1 to {self.max_page_size}."
            raise ValidationError({self.page_size_query_param: [message]})
        return int(raw)

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise _invalid_cursor() from None
        # A cursor is client input: its position must be a time before it reaches a query.
        if cursor is not None and cursor.position is not None:
            try:
                position = parse_datetime(cursor.position)
                valid = position is not None and position.astimezone(UTC) is not None
            except (ValueError, OverflowError):
                valid = False
            if not valid:
                raise _invalid_cursor()
        return cursor


def _invalid_cursor() -> ApplicationError:
    return ApplicationError("invalid_cursor", "The cursor is invalid; start again.", status=400)


def page_of(pages: Pages, queryset: QuerySet, request: Request, view: APIView) -> list[Any]:
    return list(pages.paginate_queryset(queryset, request, view=view) or [])


PAGE_PARAMETERS = [
    OpenApiParameter(
        "cursor", str, description="Opaque; copy it from a link this endpoint returned."
    ),
    OpenApiParameter(
        "page_size",
        {"type": "integer", "minimum": 1, "maximum": Pages.max_page_size},
        description=f"Items per page (default {Pages.page_size}).",
    ),
]

_BAD_CURSOR = "`invalid_cursor` (start again without it) or `invalid_input` (`page_size`)."
_BAD_QUERY = "`invalid_input` (`q` missing, blank or too long; `page_size`) or `invalid_cursor`."
_NO_SESSION = "`session_not_found`: unknown, deleted or not yours."
_NO_RECORD = "`record_not_found`: unknown, in a deleted session, or not yours."
_NOT_RATEABLE = "`record_not_rateable`: the answer is pending, streaming or an error."

# --- Sessions -------------------------------------------------------------------------------


class SessionListApi(APIView):
    class Pagination(Pages):
        ordering = ("-updated_at", "-id")

    class OutputSerializer(serializers.Serializer):
        next = serializers.URLField(allow_null=True, help_text="Older activity.")
        previous = serializers.URLField(allow_null=True, help_text="Newer activity.")
        results = SessionOutput(many=True)

    @extend_schema(
        tags=["sessions"],
        operation_id="sessions_list",
        summary="Your sessions, newest activity first",
        parameters=PAGE_PARAMETERS,
        responses={200: OutputSerializer, **errors(400, 401, e400=_BAD_CURSOR)},
    )
    def get(self, request: Request) -> Response:
        pages = self.Pagination()
        sessions = page_of(pages, session_list(owner=request.user), request, self)
        body = {
            "next": pages.get_next_link(),
            "previous": pages.get_previous_link(),
            "results": session_attach_previews(sessions=sessions),
        }
        return Response(self.OutputSerializer(body).data)


class SessionCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        title = TextField(max_length=120, required=False, allow_blank=True, default="")

    @extend_schema(
        tags=["sessions"],
        operation_id="sessions_create",
        summary="Start an empty session (the stream endpoint also starts one by itself)",
        request=InputSerializer,
        responses={201: SessionOutput, **errors(400, 401, 415)},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = session_create(owner=request.user, **data.validated_data)
        session = session_get_detail(owner=request.user, session_id=created.pk)
        return Response(SessionOutput(session).data, status=201)


class SessionDetailApi(APIView):
    @extend_schema(
        tags=["sessions"],
        operation_id="sessions_retrieve",
        summary="One session",
        responses={200: SessionOutput, **errors(401, 404, e404=_NO_SESSION)},
    )
    def get(self, request: Request, session_id: int) -> Response:
        session = session_get_detail(owner=request.user, session_id=session_id)
        return Response(SessionOutput(session).data)


class SessionRenameApi(APIView):
    class InputSerializer(serializers.Serializer):
        title = TextField(max_length=120, required=False, allow_blank=True)

    @extend_schema(
        tags=["sessions"],
        operation_id="sessions_rename",
        summary="Rename a session",
        request=InputSerializer,
        responses={200: SessionOutput, **errors(400, 401, 404, 415, e404=_NO_SESSION)},
    )
    def patch(self, request: Request, session_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if "title" in data.validated_data:
            session_rename(owner=request.user, session_id=session_id, **data.validated_data)
        session = session_get_detail(owner=request.user, session_id=session_id)
        return Response(SessionOutput(session).data)


class SessionDeleteApi(APIView):
    @extend_schema(
        tags=["sessions"],
        operation_id="sessions_delete",
        summary="Delete a session (soft: it and its records disappear for you)",
        responses={204: None, **errors(401, 404, e404=_NO_SESSION)},
    )
    def delete(self, request: Request, session_id: int) -> Response:
        session_soft_delete(owner=request.user, session_id=session_id)
        return Response(status=204)


# --- Records --------------------------------------------------------------------------------


class RecordListApi(APIView):
    class Pagination(Pages):
        # Pages are cut newest first, so the first page is the latest conversation; each
        # page is then shown oldest to newest, and `before` reaches further back.
        ordering = ("-created_at", "-id")

    class OutputSerializer(serializers.Serializer):
        results = RecordOutput(many=True, help_text="Oldest to newest.")
        before = serializers.URLField(
            allow_null=True, help_text="The page of older records; null at the first record."
        )
        after = serializers.URLField(
            allow_null=True, help_text="The page of newer records; null on the newest page."
        )

    @extend_schema(
        tags=["records"],
        operation_id="session_records_list",
        summary="A session's records: the newest page first, each page in chronological order",
        parameters=PAGE_PARAMETERS,
        responses={
            200: OutputSerializer,
            **errors(400, 401, 404, e400=_BAD_CURSOR, e404=_NO_SESSION),
        },
    )
    def get(self, request: Request, session_id: int) -> Response:
        session = session_get(owner=request.user, session_id=session_id)
        pages = self.Pagination()
        records = page_of(pages, record_list(session=session), request, self)
        body = {
            "results": records[::-1],
            "before": pages.get_next_link(),
            "after": pages.get_previous_link(),
        }
        return Response(self.OutputSerializer(body).data)


class RecordDetailApi(APIView):
    @extend_schema(
        tags=["records"],
        operation_id="records_retrieve",
        summary="One record, with its status",
        responses={200: RecordOutput, **errors(401, 404, e404=_NO_RECORD)},
    )
    def get(self, request: Request, record_id: int) -> Response:
        return Response(RecordOutput(record_get(owner=request.user, record_id=record_id)).data)


class RecordSearchApi(APIView):
    class InputSerializer(serializers.Serializer):
        q = TextField(max_length=100, help_text="Words that must all appear (any case).")

    class Pagination(Pages):
        ordering = ("-created_at", "-id")

    class OutputSerializer(serializers.Serializer):
        next = serializers.URLField(allow_null=True, help_text="Older matches.")
        previous = serializers.URLField(allow_null=True, help_text="Newer matches.")
        results = SearchHitOutput(many=True, help_text="Newest first.")

    @extend_schema(
        tags=["records"],
        operation_id="records_search",
        summary="Search your questions and answers",
        parameters=[InputSerializer, *PAGE_PARAMETERS],
        responses={200: OutputSerializer, **errors(400, 401, e400=_BAD_QUERY)},
    )
    def get(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        pages = self.Pagination()
        found = record_search(owner=request.user, query=data.validated_data["q"])
        hits = page_of(pages, found, request, self)
        body = {
            "next": pages.get_next_link(),
            "previous": pages.get_previous_link(),
            "results": hits,
        }
        return Response(self.OutputSerializer(body).data)


class RecordRateApi(APIView):
    class InputSerializer(serializers.Serializer):
        rating = serializers.ChoiceField(choices=ChatRecord.Rating.choices)
        reason = TextField(max_length=200, required=False, allow_blank=True, default="")

    @extend_schema(
        tags=["records"],
        operation_id="records_rate",
        summary="Rate an answer (idempotent: the request is the whole new rating)",
        request=InputSerializer,
        responses={
            200: RecordOutput,
            **errors(400, 401, 404, 409, 415, e404=_NO_RECORD, e409=_NOT_RATEABLE),
        },
    )
    def post(self, request: Request, record_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        record = record_rate(owner=request.user, record_id=record_id, **data.validated_data)
        return Response(RecordOutput(record).data)


class RecordBulkSaveApi(APIView):
    # chatproject/request_body.py: a larger limit, and a bare array of items too.
    body_max_bytes = BULK_BODY_MAX_BYTES
    body_json_types = (dict, list)

    class InputSerializer(serializers.Serializer):
        # Each item is checked on its own by the handoff, so here any JSON value passes.
        items = serializers.ListField(child=serializers.JSONField(), max_length=MAX_ITEMS)
        session_id = serializers.IntegerField(
            min_value=1, max_value=MAX_DB_ID, required=False, allow_null=True
        )

    class RequestSerializer(serializers.Serializer):  # what the schema documents
        items = serializers.ListField(child=HandoffItemSerializer(), max_length=MAX_ITEMS)
        session_id = serializers.IntegerField(
            min_value=1,
            max_value=MAX_DB_ID,
            required=False,
            allow_null=True,
            help_text="Put every new record in this session.",
        )

    class OutputSerializer(serializers.Serializer):
        class ItemResultSerializer(serializers.Serializer):
            index = serializers.IntegerField(help_text="Position of the item in `items`.")
            result = serializers.ChoiceField(choices=["created", "updated", "unchanged", "error"])
            record_id = serializers.IntegerField(allow_null=True)
            session_id = serializers.IntegerField(allow_null=True)
            client_id = serializers.CharField(allow_null=True)
            error = ErrorDetailOutput(allow_null=True)

        class CountsSerializer(serializers.Serializer):
            created = serializers.IntegerField()
            updated = serializers.IntegerField()
            unchanged = serializers.IntegerField()
            error = serializers.IntegerField()

        results = ItemResultSerializer(many=True)
        counts = CountsSerializer()

    @extend_schema(
        tags=["records"],
        operation_id="records_bulk_save",
        summary="Save the chat list a web-view page handed over (upsert, per-item results)",
        description=(
            "Also accepts a bare JSON array of items. Every item is saved or refused on its "
            "own; see docs/api.md for the matching rules."
        ),
        request=RequestSerializer,
        responses={200: OutputSerializer, **errors(400, 401, 404, 413, 415, e404=_NO_SESSION)},
    )
    def post(self, request: Request) -> Response:
        raw = request.data
        data = self.InputSerializer(data={"items": raw} if isinstance(raw, list) else raw)
        data.is_valid(raise_exception=True)
        results = handoff_save(
            owner=request.user,
            raw_items=data.validated_data["items"],
            session_id=data.validated_data.get("session_id"),
        )
        counts = Counter({"created": 0, "updated": 0, "unchanged": 0, "error": 0})
        counts.update(r.result for r in results)
        body = {"results": results, "counts": counts}
        return Response(self.OutputSerializer(body).data)
