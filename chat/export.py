"""Records as CSV for staff: one row per record, streamed, ready for Excel.

The rows are read in chunks and written out as they come, so an export of 100,000 records
holds one chunk in memory, not the whole table. The response is an async stream: under
ASGI a synchronous one would be read into memory whole before the first byte is sent.
"""

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

from asgiref.sync import sync_to_async
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from chat.models import ChatRecord

# Excel reads a CSV as the local code page unless it starts with a byte order mark.
BOM = "\ufeff"
CHUNK_ROWS = 2000
_FLUSH_CHARS = 64 * 1024
# (header, value in `values_list`)
COLUMNS = (
    ("id", "id"),
    ("created at", "created_at"),
    ("openid", "owner__openid"),
    ("nickname", "owner__nickname"),
    ("session", "session_id"),
    ("question", "question"),
    ("answer", "answer"),
    ("model", "model_name"),
    ("status", "status"),
    ("error code", "error_code"),
    ("rating", "rating"),
    ("rating reason", "rating_reason"),
    ("source", "source"),
    ("terminal", "terminal"),
    ("first token ms", "first_token_ms"),
    ("prompt tokens", "prompt_tokens"),
    ("completion tokens", "completion_tokens"),
    ("moderation", "moderation"),
    ("hidden", "is_hidden"),
)
# A cell starting with one of these is a formula to Excel: a question could run one on a
# staff computer (OWASP "CSV injection"). A leading apostrophe makes it text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv_chunks(records: QuerySet[ChatRecord]) -> Iterator[bytes]:
    """The BOM and header, then the records in their queryset's order, read CHUNK_ROWS at a
    time (a server-side cursor on PostgreSQL) and sent on in pieces of ~64 KB."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write(BOM)
    writer.writerow([header for header, _ in COLUMNS])
    rows = records.values_list(*(name for _, name in COLUMNS))
    for row in rows.iterator(chunk_size=CHUNK_ROWS):
        writer.writerow([_cell(value) for value in row])
        if buffer.tell() >= _FLUSH_CHARS:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


async def records_csv_chunks(records: QuerySet[ChatRecord]) -> AsyncIterator[bytes]:
    """`_csv_chunks` driven from the event loop: each piece is made in the request's
    database thread, where its cursor stays open between pieces. (Django's own
    `aiterator()` reads a values() query whole before the first row.)"""
    chunks = _csv_chunks(records)
    next_chunk = sync_to_async(next)
    while (chunk := await next_chunk(chunks, None)) is not None:
        yield chunk


def records_csv_response(records: QuerySet[ChatRecord]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        records_csv_chunks(records), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="chat-records-{stamp}.csv"'
    return response
