"""The history API: sessions, records, search, ratings and the web-view handoff.

Sessions are one ViewSet (page, create, retrieve, rename, delete); every other path is
one APIView. Each action parses,
calls one selector (chat/selectors.py) or service (chat/services.py, chat/handoff.py),
and shapes the answer. The contract, with examples, is docs/api.md.
"""

from collections import Counter

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.viewsets import ViewSet

from chat.handoff import MAX_ITEMS, handoff_save
from chat.models import ChatRecord
from chat.openapi import errors
from chat.paging import PAGE_PARAMETERS, Pages, page_of
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

# Generous for 200 items of chat text (JSON escapes included), small enough that a stray
# upload cannot tie up a worker parsing it; DATA_UPLOAD_MAX_MEMORY_SIZE is set to it.
BULK_BODY_MAX_BYTES = 8 * 1024 * 1024

_BAD_CURSOR = "`invalid_cursor` (start again without it) or `invalid_input` (`page_size`)."
_BAD_QUERY = "`invalid_input` (`q` missing, blank or too long; `page_size`) or `invalid_cursor`."
_NO_SESSION = "`session_not_found`: unknown, deleted or not yours."
_NO_RECORD = "`record_not_found`: unknown, in a deleted session, or not yours."
_NOT_RATEABLE = "`record_not_rateable`: the answer is pending, streaming or an error."

# --- Sessions -------------------------------------------------------------------------------


@extend_schema_serializer(component_name="SessionListOutput")
class SessionPageOutput(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="Older activity.")
    previous = serializers.URLField(allow_null=True, help_text="Newer activity.")
    results = SessionOutput(many=True)


@extend_schema_serializer(component_name="SessionCreateInput")
class SessionCreateInput(serializers.Serializer):
    title = TextField(max_length=120, required=False, allow_blank=True, default="")


@extend_schema_serializer(component_name="SessionRenameInput")
class SessionRenameInput(serializers.Serializer):
    title = TextField(max_length=120, required=False, allow_blank=True)


# The caller's sessions: a page of them, create, retrieve, rename (PATCH) and delete.
# Bound to its two paths explicitly (chat/api_urls.py) rather than by a router: its page
# is a cursor page whose documented shape is its own (a router's `list` is documented as a
# bare array).
class SessionViewSet(ViewSet):
    class Pagination(Pages):
        ordering = ("-updated_at", "-id")

    @extend_schema(
        tags=["sessions"],
        operation_id="sessions_list",
        summary="Your sessions, newest activity first",
        parameters=PAGE_PARAMETERS,
        responses={200: SessionPageOutput, **errors(400, 401, e400=_BAD_CURSOR)},
    )
    def page(self, request: Request) -> Response:
        pages = self.Pagination()
        sessions = page_of(pages, session_list(owner=request.user), request, self)
        body = {
            "next": pages.get_next_link(),
            "previous": pages.get_previous_link(),
            "results": session_attach_previews(sessions=sessions),
        }
        return Response(SessionPageOutput(body).data)

    @extend_schema(
        tags=["sessions"],
        operation_id="sessions_create",
        summary="Start an empty session (the stream endpoint also starts one by itself)",
        request=SessionCreateInput,
        responses={201: SessionOutput, **errors(400, 401, 415)},
    )
    def create(self, request: Request) -> Response:
        data = SessionCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        created = session_create(owner=request.user, **data.validated_data)
        session = session_get_detail(owner=request.user, session_id=created.pk)
        return Response(SessionOutput(session).data, status=201)

    @extend_schema(
        tags=["sessions"],
        operation_id="sessions_retrieve",
        summary="One session",
        responses={200: SessionOutput, **errors(401, 404, e404=_NO_SESSION)},
    )
    def retrieve(self, request: Request, session_id: int) -> Response:
        session = session_get_detail(owner=request.user, session_id=session_id)
        return Response(SessionOutput(session).data)

    @extend_schema(
        tags=["sessions"],
        operation_id="sessions_rename",
        summary="Rename a session",
        request=SessionRenameInput,
        responses={200: SessionOutput, **errors(400, 401, 404, 415, e404=_NO_SESSION)},
    )
    def partial_update(self, request: Request, session_id: int) -> Response:
        data = SessionRenameInput(data=request.data)
        data.is_valid(raise_exception=True)
        if "title" in data.validated_data:
            session_rename(owner=request.user, session_id=session_id, **data.validated_data)
        session = session_get_detail(owner=request.user, session_id=session_id)
        return Response(SessionOutput(session).data)

    @extend_schema(
        tags=["sessions"],
        operation_id="sessions_delete",
        summary="Delete a session (soft: it and its records disappear for you)",
        responses={204: None, **errors(401, 404, e404=_NO_SESSION)},
    )
    def destroy(self, request: Request, session_id: int) -> Response:
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
