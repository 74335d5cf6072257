"""CSV export of records for staff: what the list shows, one row per record, UTF-8 with a
byte order mark so Excel reads Chinese, streamed in pieces."""

import csv
import io
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.urls import reverse
from django.utils import timezone

from chat.export import COLUMNS
from chat.models import ChatRecord, ChatSession
from chat.moderation import record_hide

pytestmark = pytest.mark.django_db(transaction=True)

EXPORT = reverse("admin:chat_chatrecord_export")
TRICKY_ANSWERS = [
    "第一行\n第二行，带逗号",
    '他说："你好"',
    "😀 表情 and 中英混排",
    '=HYPERLINK("http://evil","点我")',
    "- 列表项一\n- 列表项二",
]


@pytest.fixture
async def staff_client(staff) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(staff)
    return client


def _chinese_records(owner, other) -> list[ChatRecord]:
    session = ChatSession.objects.create(owner=owner, title="中文")
    start = timezone.now() - timedelta(hours=1)
    records = [
        ChatRecord.objects.create(
            session=session,
            owner=owner if n % 2 == 0 else other,
            question=f"问题 {n}：怎么办？",
            answer=answer,
            status="done",
            model_name="通义千问",
            rating="not_useful" if n == 1 else "none",
            rating_reason="没有回答问题" if n == 1 else "",
            first_token_ms=100 * (n + 1),
            created_at=start + timedelta(minutes=n),
        )
        for n, answer in enumerate(TRICKY_ANSWERS)
    ]
    record_hide(record=records[2], by=None, note="x")
    return records


async def _export(client: AsyncClient, query: str = "") -> tuple[list[bytes], object]:
    response = await client.get(EXPORT + query)
    assert response.status_code == 200
    chunks = [chunk async for chunk in response.streaming_content]
    return chunks, response


def _rows(chunks: list[bytes]) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"), newline="")))


async def test_the_export_is_excel_ready_utf8_with_one_row_per_record(staff_client, owner, other):
    records = await sync_to_async(_chinese_records)(owner, other)

    chunks, response = await _export(staff_client)

    body = b"".join(chunks)
    assert body.startswith(b"\xef\xbb\xbf")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="chat-records-')
    header, *rows = _rows(chunks)
    assert header == [name for name, _ in COLUMNS]
    by_id = {int(row[0]): dict(zip(header, row, strict=True)) for row in rows}
    assert sorted(by_id) == sorted(r.pk for r in records)
    for record, answer in zip(records, TRICKY_ANSWERS, strict=True):
        row = by_id[record.pk]
        assert row["question"] == record.question
        assert row["answer"] == (answer if answer[0] not in "=-" else "'" + answer)
        assert row["model"] == "通义千问"
        assert row["openid"] == ("owner-openid" if record.owner_id == owner.pk else "other-openid")
        local = timezone.localtime(record.created_at).strftime("%Y-%m-%d %H:%M:%S")
        assert row["created at"] == local
    assert by_id[records[1].pk]["rating reason"] == "没有回答问题"
    assert by_id[records[2].pk]["hidden"] == "yes"


async def test_the_export_holds_what_the_list_shows_with_its_filters_and_search(
    staff_client, owner, other
):
    records = await sync_to_async(_chinese_records)(owner, other)

    by_user = _rows((await _export(staff_client, f"?owner={other.pk}"))[0])[1:]
    searched = _rows((await _export(staff_client, "?q=表情"))[0])[1:]
    queued = _rows((await _export(staff_client, "?moderation=queue"))[0])[1:]

    assert {int(row[0]) for row in by_user} == {records[1].pk, records[3].pk}
    assert [int(row[0]) for row in searched] == [records[2].pk]
    assert [int(row[0]) for row in queued] == [records[1].pk]


async def test_a_large_export_arrives_in_pieces(staff_client, owner):
    def many() -> None:
        session = ChatSession.objects.create(owner=owner)
        ChatRecord.objects.bulk_create(
            ChatRecord(session=session, owner=owner, question=f"问题 {n}", answer="回答" * 40)
            for n in range(3000)
        )

    await sync_to_async(many)()

    chunks, response = await _export(staff_client)

    assert response.streaming
    assert len(chunks) > 5
    assert len(_rows(chunks)) == 3001


async def test_the_records_picked_in_the_list_can_be_exported(staff_client, owner, other):
    records = await sync_to_async(_chinese_records)(owner, other)
    picked = {"action": "export_selected", "_selected_action": [records[0].pk, records[4].pk]}

    response = await staff_client.post(reverse("admin:chat_chatrecord_changelist"), picked)

    chunks = [chunk async for chunk in response.streaming_content]
    assert sorted(int(row[0]) for row in _rows(chunks)[1:]) == [records[0].pk, records[4].pk]


async def test_an_unknown_filter_is_a_clear_error(staff_client):
    response = await staff_client.get(EXPORT + "?nonsense=1")

    assert response.status_code == 400
    assert "无法识别的筛选条件" in response.content.decode()
