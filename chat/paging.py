"""Cursor pages for the history API: opaque, stable while new rows arrive, strict about
what a client sends."""

from datetime import UTC
from typing import Any

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.views import APIView

from chatproject.errors import ApplicationError


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
