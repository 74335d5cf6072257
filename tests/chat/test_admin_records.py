"""The records as staff moderate them in the admin: the list (columns, filters, search, the
review queue, its number of queries), a record's page, and the moderation actions."""

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from chat.models import ChatRecord, ChatSession, ModerationEvent
from chat.moderation import record_flag, record_hide, record_mark_reviewed

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/chat/chatrecord/"


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def _record(owner, *, session: ChatSession | None = None, **fields) -> ChatRecord:
    session = session or ChatSession.objects.create(owner=owner, title="chat")
    values = {"question": "q", "answer": "a", "status": "done", **fields}
    return ChatRecord.objects.create(session=session, owner=owner, **values)


def _listed(client: Client, query: str = "") -> list[int]:
    """The ids of the records the changelist shows, in its order."""
    response = client.get(CHANGELIST + query)
    assert response.status_code == 200, response.content[:500]
    return [int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', response.text)]


def test_a_row_shows_previews_user_model_status_rating_source_terminal_timing(staff_client, owner):
    record = _record(
        owner,
        question="怎么退款？" + "很长的问题" * 40,
        answer="请按以下步骤操作。" + "步骤" * 100 + "结尾不该出现",
        model_name="deepseek",
        status="error",
        error_code="upstream_timeout",
        rating="not_useful",
        rating_reason="答非所问",
        source="handoff",
        terminal="webview",
        first_token_ms=1234,
    )

    page = staff_client.get(CHANGELIST).text

    row = page[page.index(f'value="{record.pk}"') :]
    row = row[: row.index("</tr>")]
    for shown in (
        "怎么退款？很长的问题",
        "…",
        "请按以下步骤操作。",
        "owner-openid",
        "deepseek",
        "出错",  # labels in the admin's language (zh-hans by default), values are codes
        "upstream_timeout",
        "无用",
        "答非所问",
        "网页交接",
        "H5 网页",
    ):
        assert shown in row, shown
    assert "结尾不该出现" not in page  # a preview, not the whole answer
    other_status = _record(owner, first_token_ms=1234)
    assert "1.23 秒" in staff_client.get(CHANGELIST + f"?q=&owner={owner.pk}").text
    assert other_status.pk in _listed(staff_client)


def test_a_markdown_answer_is_previewed_as_its_words(staff_client, owner):
    long_tail = "，".join(["继续"] * 60) + "结尾不该出现"
    record = _record(
        owner,
        answer=f"> 🧪 **离线演示** — `代码` 和 [链接](https://x.example)\n\n- 一\n- 二{long_tail}",
    )

    page = staff_client.get(CHANGELIST).text

    row = page[page.index(f'value="{record.pk}"') :]
    preview = row[row.index('class="preview-answer"') : row.index("</tr>")]
    assert "🧪 离线演示 — 代码 和 链接 一 二继续" in preview
    for mark in ("**", "&gt;", "`", "](", "- 一"):
        assert mark not in preview, mark
    assert "…" in preview
    assert "结尾不该出现" not in preview


@pytest.fixture
def assorted(owner, other, staff) -> dict[str, ChatRecord]:
    """One record per thing a filter picks out."""
    now = timezone.now()
    records = {
        "plain": _record(owner, created_at=now - timedelta(days=40), first_token_ms=300),
        "not_useful": _record(owner, rating="not_useful", first_token_ms=700),
        "useful": _record(owner, rating="useful", first_token_ms=1500),
        "error": _record(other, status="error", error_code="upstream_error"),
        "handoff": _record(other, source="handoff", terminal="webview", model_name="qwen"),
        "flagged": _record(other, first_token_ms=4000),
        "reviewed": _record(owner, rating="not_useful", terminal="miniprogram"),
        "hidden": _record(owner, model_name="qwen"),
    }
    record_flag(record=records["flagged"], by=staff, note="odd")
    record_mark_reviewed(record=records["reviewed"], by=staff)
    record_hide(record=records["hidden"], by=staff, note="spam")
    return records


def _names(records: dict[str, ChatRecord], ids: list[int]) -> set[str]:
    by_id = {record.pk: name for name, record in records.items()}
    return {by_id[pk] for pk in ids}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?moderation=queue", {"not_useful", "flagged"}),
        ("?moderation=flagged", {"flagged"}),
        ("?moderation=reviewed", {"reviewed", "hidden"}),
        ("?moderation=unreviewed", {"plain", "not_useful", "useful", "error", "handoff"}),
        ("?is_hidden__exact=1", {"hidden"}),
        ("?status__exact=error", {"error"}),
        ("?rating__exact=not_useful", {"not_useful", "reviewed"}),
        ("?rating__exact=useful", {"useful"}),
        ("?source__exact=handoff", {"handoff"}),
        ("?terminal__exact=webview", {"handoff"}),
        ("?terminal__exact=miniprogram", {"reviewed"}),
        ("?model_name=qwen", {"handoff", "hidden"}),
        ("?first_token=fast", {"plain"}),
        ("?first_token=ok", {"not_useful"}),
        ("?first_token=slow", {"useful"}),
        ("?first_token=very_slow", {"flagged"}),
        ("?first_token=none", {"error", "handoff", "reviewed", "hidden"}),
    ],
)
def test_each_filter_picks_its_records(staff_client, assorted, query, expected):
    assert _names(assorted, _listed(staff_client, query)) == expected


def test_the_user_and_date_filters(staff_client, assorted, other):
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    week = {"created_at__gte": today - timedelta(days=7), "created_at__lt": today + timedelta(1)}
    since = "?" + urlencode({name: value.isoformat() for name, value in week.items()})

    by_user = _names(assorted, _listed(staff_client, f"?owner={other.pk}"))
    recent = _names(assorted, _listed(staff_client, since))

    assert by_user == {"error", "handoff", "flagged"}
    assert recent == set(assorted) - {"plain"}
    assert staff_client.get(CHANGELIST + "?owner=abc").status_code == 302  # Django's ?e=1


def test_search_finds_words_of_questions_and_answers_openids_and_error_codes(
    staff_client, owner, other
):
    refund = _record(owner, question="如何申请退款", answer="在订单页")
    invoice = _record(other, question="发票", answer="请联系客服开具发票")
    failed = _record(other, status="error", error_code="upstream_timeout")

    assert _listed(staff_client, "?q=退款") == [refund.pk]
    assert _listed(staff_client, "?q=客服") == [invoice.pk]
    assert set(_listed(staff_client, "?q=other-openid")) == {invoice.pk, failed.pk}
    assert _listed(staff_client, "?q=upstream_timeout") == [failed.pk]


def test_the_review_queue_lists_oldest_first_and_the_full_list_newest_first(
    staff_client, owner, staff
):
    now = timezone.now()
    old = _record(owner, rating="not_useful", created_at=now - timedelta(days=2))
    new = _record(owner, rating="not_useful", created_at=now - timedelta(hours=1))
    middle = _record(owner, created_at=now - timedelta(days=1))
    record_flag(record=middle, by=staff, note="check")

    assert _listed(staff_client, "?moderation=queue") == [old.pk, middle.pk, new.pk]
    assert _listed(staff_client) == [new.pk, middle.pk, old.pk]


def _queries_for_a_page(client: Client, query: str = "") -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(CHANGELIST + query)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("query", ["", "?moderation=queue", "?q=问题&status__exact=done"])
def test_a_page_of_100_rows_costs_the_same_few_queries_as_a_page_of_5(
    staff_client, owner, other, staff, query
):
    def add(count: int) -> None:
        for n in range(count):
            record = _record(
                owner if n % 2 else other,
                question=f"问题 {n}",
                answer="回答" * 200,
                rating="not_useful",
                rating_reason="不对",
            )
            if n % 3 == 0:
                record_hide(record=record, by=staff, note="x")

    add(5)
    few = _queries_for_a_page(staff_client, query)
    add(160)
    many = _queries_for_a_page(staff_client, query)

    assert len(_listed(staff_client, query)) == 100
    assert few == many
    # Session, user, the two counts, the page, the model filter's choices.
    assert 4 <= many <= 7


# --- A record's page ----------------------------------------------------------------------


def _page(client: Client, record: ChatRecord) -> str:
    response = client.get(reverse("admin:chat_chatrecord_change", args=[record.pk]))
    assert response.status_code == 200
    return response.text


def test_a_record_page_shows_the_answer_rendered_and_raw_and_the_conversation(
    staff_client, owner, staff
):
    session = ChatSession.objects.create(owner=owner, title="退款咨询")
    now = timezone.now()
    before = _record(
        owner, session=session, question="第一问", answer="第一答", created_at=now - timedelta(1)
    )
    record = _record(
        owner,
        session=session,
        question="怎么退款？",
        answer="**先登录**，然后 <script>alert('x')</script>\n\n"
        "| 步骤 | 说明 |\n|--|--|\n| 1 | 登录 |",
        rating="not_useful",
        rating_reason="太笼统",
        model_name="deepseek",
        first_token_ms=850,
        prompt_tokens=40,
        completion_tokens=120,
        created_at=now,
    )
    after = _record(
        owner, session=session, question="第三问", answer="第三答", created_at=now + timedelta(1)
    )
    record_hide(record=after, by=staff, note="spam")
    record_flag(record=record, by=staff, note="核对退款流程")

    page = _page(staff_client, record)

    assert "<strong>先登录</strong>" in page  # rendered
    assert "**先登录**" in page  # and raw
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<td>登录</td>" in page
    assert page.index("第一问") < page.index("第三问")
    assert "第一答" in page
    assert "第三答" in page
    assert 'class="turn is-hidden"' in page
    assert f'href="/admin/chat/chatrecord/{before.pk}/change/"' in page
    assert "太笼统" in page
    assert "首字延迟 850 毫秒" in page
    assert "输入 40 / 输出 120" in page
    assert "<strong>已标记待复核</strong>（charlie，" in page
    assert "核对退款流程" in page


def _moderate(client: Client, record: ChatRecord, action: str, note: str = ""):
    url = reverse("admin:chat_chatrecord_moderate", args=[record.pk])
    return client.post(url, {"moderation": action, "note": note}, follow=True)


def test_moderating_from_a_record_page_acts_logs_and_says_so(staff_client, owner, staff):
    record = _record(owner)

    hidden = _moderate(staff_client, record, "hidden", "广告")
    unhidden = _moderate(staff_client, record, "unhidden", "误判")

    assert "已隐藏。" in hidden.text
    assert ">取消隐藏</button>" in hidden.text
    assert "已取消隐藏。" in unhidden.text
    assert ">对用户隐藏</button>" in unhidden.text
    assert list(record.moderation_events.values_list("action", "note", "by")) == [
        ("hidden", "广告", staff.pk),
        ("unhidden", "误判", staff.pk),
    ]


def test_hiding_without_a_note_is_refused_and_changes_nothing(staff_client, owner):
    record = _record(owner)

    response = _moderate(staff_client, record, "hidden")
    wrong = _moderate(staff_client, record, "deleted", "x")
    read = staff_client.get(reverse("admin:chat_chatrecord_moderate", args=[record.pk]))

    assert "请说明原因" in response.text
    assert wrong.status_code == 200
    assert '<li class="error">' in wrong.text
    assert read.status_code == 405
    record.refresh_from_db()
    assert not record.is_hidden
    assert not ModerationEvent.objects.exists()


def test_a_selection_is_hidden_after_a_page_that_asks_for_the_note(staff_client, owner, staff):
    records = [_record(owner, question=f"问题 {n}") for n in range(3)]
    picked = {"action": "records_hidden", "_selected_action": [r.pk for r in records[:2]]}

    asked = staff_client.post(CHANGELIST, picked)
    refused = staff_client.post(CHANGELIST, {**picked, "apply": "1", "note": ""})
    done = staff_client.post(CHANGELIST, {**picked, "apply": "1", "note": "刷屏"}, follow=True)

    assert asked.status_code == 200
    assert "问题 0" in asked.text
    assert 'name="note"' in asked.text
    assert refused.status_code == 200
    assert "请说明原因" in refused.text
    assert "已隐藏：2 条记录。" in done.text
    assert list(ChatRecord.objects.filter(is_hidden=True).order_by("pk")) == records[:2]
    assert ModerationEvent.objects.filter(note="刷屏", by=staff).count() == 2


def test_all_records_a_filter_shows_can_be_marked_reviewed_at_once(staff_client, owner):
    queued = [_record(owner, rating="not_useful") for _ in range(3)]
    _record(owner, rating="useful")
    everything = {
        "action": "records_reviewed",
        "select_across": "1",
        "_selected_action": [queued[0].pk],
        "apply": "1",
        "note": "",
    }

    staff_client.post(CHANGELIST + "?moderation=queue", everything)

    assert set(ChatRecord.objects.filter(moderation="reviewed")) == set(queued)


def test_the_admin_index_links_the_queue_with_its_size_and_the_dashboard(staff_client, owner):
    _record(owner, rating="not_useful")
    _record(owner, rating="not_useful")
    _record(owner, rating="useful")

    page = staff_client.get("/admin/").text

    assert f'href="{CHANGELIST}?moderation=queue"' in page
    assert "2 条待审" in page
    assert 'href="/admin/dashboard/"' in page


def test_the_record_form_saves_no_answer_and_no_moderation_even_for_a_superuser(
    staff_client, owner
):
    """Only the rating fields are inputs: the save goes through, the rest stays."""
    record = _record(owner, answer="原样")
    url = reverse("admin:chat_chatrecord_change", args=[record.pk])

    response = staff_client.post(
        url,
        {
            "rating": "useful", "rating_reason": "", "question_type": "",
            "answer": "改过", "question": "改过", "is_hidden": "on", "moderation": "reviewed",
        },
    )  # fmt: skip

    assert response.status_code == 302
    record.refresh_from_db()
    assert record.rating == "useful"
    assert (record.question, record.answer, record.is_hidden, record.moderation) == (
        "q", "原样", False, "unreviewed",
    )  # fmt: skip


def test_a_records_content_verdict_is_on_its_page_read_only_and_filters_the_list(
    staff_client, owner
):
    blocked = _record(
        owner, status="error", error_code="content_blocked", content_check_side="answer",
        content_check_suggest="risky", content_check_label=20001,
        content_check_trace_id="trace-0123abcd", is_hidden=True,
    )  # fmt: skip
    review = _record(owner, content_check_side="question", content_check_suggest="review")
    clean = _record(owner)

    page = staff_client.get(f"{CHANGELIST}{blocked.pk}/change/", HTTP_ACCEPT_LANGUAGE="en")

    assert page.status_code == 200
    text = page.text
    assert "trace-0123abcd" in text
    assert "20001 (" in text
    assert 'name="content_check_trace_id"' not in text  # shown, not editable
    assert 'name="content_check_suggest"' not in text
    assert _listed(staff_client, "?content_check_suggest=risky") == [blocked.pk]
    assert _listed(staff_client, "?content_check_suggest=review") == [review.pk]
    assert clean.pk in _listed(staff_client)
