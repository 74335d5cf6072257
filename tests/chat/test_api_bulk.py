"""The web-view handoff: the same chat list arrives again and again, overlapping what the
stream endpoint already saved, and must never duplicate, shorten or leak anything."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import AsyncClient, Client, override_settings
from django.utils import timezone

from chat.models import ChatRecord, ChatSession

pytestmark = pytest.mark.django_db

URL = "/api/chat/records/bulk"


@pytest.fixture
def api(owner_token) -> Client:
    return Client(headers={"Authorization": f"Bearer {owner_token}"})


def _save(api: Client, body) -> dict:
    response = api.post(URL, body, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def _results(body: dict) -> list[str]:
    return [r["result"] if r["result"] != "error" else r["error"]["code"] for r in body["results"]]


def _legacy(n: int, **fields) -> dict:
    """A message as an H5 page sends it."""
    return {
        "id": f"h5-{n}",
        "question": f"问题{n}",
        "answer": f"回答{n}",
        "useful": 0,
        "createTime": f"2026-03-{n:02d} 20:15:{n:02d}",
        "largeModel": "deepseek",
        "terminal": "h5",
        "window": "w1",
        "questionType": "general",
        **fields,
    }


def _server_record(owner, session=None, **fields) -> ChatRecord:
    """A record as the stream endpoint leaves it: finished, with finished_at."""
    session = session or ChatSession.objects.create(owner=owner, title="streamed")
    fields = {
        "question": "streamed question",
        "answer": "the full streamed answer",
        "status": "done",
        "finished_at": timezone.now(),
        **fields,
    }
    return ChatRecord.objects.create(session=session, owner=owner, **fields)


def test_legacy_fields_are_understood_and_a_window_becomes_one_session(api, owner):
    body = _save(api, {"items": [_legacy(1, useful=1), _legacy(2, useful=2)]})

    assert _results(body) == ["created", "created"]
    assert body["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "error": 0}
    first = ChatRecord.objects.get(client_id="h5-1")
    assert first.created_at == datetime(2026, 3, 1, 12, 15, 1, tzinfo=UTC)  # 20:15 in China
    assert (first.question, first.answer, first.status) == ("问题1", "回答1", "done")
    assert (first.model_name, first.terminal, first.question_type) == (
        "deepseek",
        "webview",
        "general",
    )
    assert first.rating == "useful"
    assert first.finished_at is None  # not streamed here: its end time is unknown
    assert ChatRecord.objects.get(client_id="h5-2").rating == "not_useful"
    session = first.session
    assert {r["session_id"] for r in body["results"]} == {session.pk}
    assert session.title == "问题1"
    assert session.updated_at == ChatRecord.objects.get(client_id="h5-2").created_at


def test_snake_case_names_work_too(api, owner):
    body = _save(
        api,
        {
            "items": [
                {
                    "client_id": "c-1",
                    "question": "q",
                    "answer": "a",
                    "rating": "useful",
                    "rating_reason": "好",
                    "created_at": "2026-03-01T12:00:00Z",
                    "model": "qwen",
                    "terminal": "miniprogram",
                    "question_type": "code",
                }
            ]
        },
    )

    record = ChatRecord.objects.get(pk=body["results"][0]["record_id"])
    assert (record.rating, record.rating_reason, record.model_name) == ("useful", "好", "qwen")
    assert record.terminal == "miniprogram"
    assert record.created_at == datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_sending_the_same_array_twice_creates_nothing_new(api, owner):
    items = [_legacy(n) for n in range(1, 4)]
    first = _save(api, items)  # a bare array, as postMessage delivers it

    second = _save(api, items)

    assert _results(first) == ["created"] * 3
    assert _results(second) == ["unchanged"] * 3
    assert [r["record_id"] for r in second["results"]] == [r["record_id"] for r in first["results"]]
    assert ChatRecord.objects.count() == 3
    assert ChatSession.objects.count() == 1


def test_a_reordered_resend_is_matched_item_by_item(api, owner):
    items = [_legacy(n) for n in range(1, 5)]
    first = _save(api, {"items": items})
    ids = {r["client_id"]: r["record_id"] for r in first["results"]}

    second = _save(api, {"items": items[::-1]})

    assert _results(second) == ["unchanged"] * 4
    assert [r["record_id"] for r in second["results"]] == [ids[i["id"]] for i in items[::-1]]
    assert ChatRecord.objects.count() == 4


def test_a_growing_list_adds_the_new_messages_to_the_same_session(api, owner):
    # postMessage delivers every message posted so far: the second handoff is a superset,
    # and the answer that was still arriving the first time is longer now.
    first = _save(api, [_legacy(1), _legacy(2, answer="回答2的前半")])
    later = [_legacy(1), _legacy(2, answer="回答2的前半，和后半。"), _legacy(3)]

    second = _save(api, later)

    assert _results(second) == ["unchanged", "updated", "created"]
    assert ChatRecord.objects.get(client_id="h5-2").answer == "回答2的前半，和后半。"
    assert {r["session_id"] for r in first["results"] + second["results"]} == {
        first["results"][0]["session_id"]
    }


def test_a_handoff_never_shortens_or_empties_an_answer(api, owner):
    _save(api, [_legacy(1, answer="a complete answer")])

    body = _save(api, [_legacy(1, answer="a comp"), _legacy(1, answer=""), _legacy(1, answer=None)])

    assert _results(body) == ["unchanged"] * 3
    assert ChatRecord.objects.get(client_id="h5-1").answer == "a complete answer"


def test_an_empty_answer_is_saved_as_interrupted_until_its_text_arrives(api, owner):
    _save(api, [_legacy(1, answer="")])
    assert ChatRecord.objects.get(client_id="h5-1").status == "interrupted"

    _save(api, [_legacy(1, answer="arrived")])

    record = ChatRecord.objects.get(client_id="h5-1")
    assert (record.status, record.answer) == ("done", "arrived")


def test_overlap_with_the_stream_keeps_the_server_answer(api, owner):
    by_client_id = _server_record(owner, client_id="web-1", question="one")
    by_record_id = _server_record(owner, question="two", answer="server two")
    sent = [
        {"id": "web-1", "question": "one", "answer": "", "createTime": "2026-03-01 10:00:00"},
        # The page kept the record_id from `start` as its message id.
        {"id": by_record_id.pk, "question": "two", "answer": "server two, and more", "useful": 1},
        {"record_id": by_record_id.pk, "answer": "server"},
    ]

    body = _save(api, {"items": sent})

    assert _results(body) == ["unchanged", "updated", "unchanged"]
    assert [r["record_id"] for r in body["results"]] == [by_client_id.pk] + [by_record_id.pk] * 2
    for record, answer in (
        (by_client_id, "the full streamed answer"),
        (by_record_id, "server two"),
    ):
        record.refresh_from_db()
        assert record.answer == answer
    assert by_record_id.rating == "useful"  # the rating is the one thing a handoff adds
    assert ChatRecord.objects.count() == 2


def test_a_page_numbering_its_messages_does_not_land_on_unrelated_records(api, owner):
    unrelated = _server_record(owner, question="something else")

    body = _save(api, [{"id": unrelated.pk, "question": "hello", "answer": "hi"}])

    assert _results(body) == ["created"]
    assert body["results"][0]["record_id"] != unrelated.pk
    assert body["results"][0]["client_id"] == str(unrelated.pk)
    unrelated.refresh_from_db()
    assert unrelated.answer == "the full streamed answer"


def test_new_messages_of_a_window_join_the_session_the_stream_opened(api, owner):
    streamed = _server_record(owner, client_id="web-1")

    body = _save(api, [_legacy(1, id="web-1"), _legacy(2)])

    assert [r["session_id"] for r in body["results"]] == [streamed.session_id] * 2


def test_items_pick_their_session(api, owner):
    mine = ChatSession.objects.create(owner=owner, title="mine")
    for_batch = ChatSession.objects.create(owner=owner, title="batch")

    body = _save(
        api,
        {
            "session_id": for_batch.pk,
            "items": [_legacy(1, session_id=mine.pk), _legacy(2), _legacy(3, window="w2")],
        },
    )

    assert [r["session_id"] for r in body["results"]] == [mine.pk, for_batch.pk, for_batch.pk]
    windows = _save(api, [_legacy(4, window="a"), _legacy(5, window="b"), _legacy(6, window="a")])
    a, b, a_again = (r["session_id"] for r in windows["results"])
    assert a == a_again != b


def test_one_bad_item_does_not_sink_the_others(api, owner):
    too_long = "x" * 20_001
    items = [
        _legacy(1),
        {"id": "no-question", "answer": "a"},
        {"question": "no id"},
        "not an object",
        _legacy(2, createTime="2026-02-30 10:00:00"),
        _legacy(3, createTime="2016-12-31 23:59:59"),
        _legacy(4, createTime="2999-01-01 00:00:00"),
        _legacy(5, createTime="2026/03/01"),
        _legacy(6, answer=too_long),
        _legacy(7, useful=3),
        _legacy(8, id=True),
        _legacy(9, question="q" * 4001),
        {"record_id": 10**12, "answer": "x"},
        _legacy(10),
    ]

    body = _save(api, {"items": items})

    assert _results(body) == [
        "created",
        "question_required",
        "id_required",
        *["invalid_input"] * 9,
        "record_not_found",
        "created",
    ]
    fields = [set(r["error"].get("fields", {})) for r in body["results"][3:12]]
    assert fields == [
        {"non_field_errors"},
        {"createTime"},
        {"createTime"},
        {"createTime"},
        {"createTime"},
        {"answer"},
        {"useful"},
        {"id"},
        {"question"},
    ]
    assert set(ChatRecord.objects.values_list("client_id", flat=True)) == {"h5-1", "h5-10"}


def test_another_users_records_are_refused_without_revealing_them(api, owner, other):
    theirs = _server_record(other, client_id="shared-id", question="their question")
    their_session = theirs.session

    body = _save(
        api,
        [
            {"record_id": theirs.pk, "answer": "overwrite", "useful": 2},
            {"record_id": theirs.pk + 1000, "answer": "overwrite"},
            {"id": theirs.pk, "question": "their question", "answer": "mine"},
            {"id": "shared-id", "question": "my own message"},
            _legacy(1, session_id=their_session.pk),
        ],
    )

    first, missing, *_ = body["results"]
    assert first["error"] == missing["error"]
    assert _results(body) == [
        "record_not_found",
        "record_not_found",
        "created",
        "created",
        "session_not_found",
    ]
    theirs.refresh_from_db()
    assert (theirs.answer, theirs.rating) == ("the full streamed answer", "none")
    assert not ChatRecord.objects.filter(session=their_session).exclude(pk=theirs.pk).exists()
    assert ChatRecord.objects.filter(owner=owner).count() == 2
    whole = api.post(
        URL, {"session_id": their_session.pk, "items": []}, content_type="application/json"
    )
    assert whole.status_code == 404
    assert whole.json()["error"]["code"] == "session_not_found"


def test_ratings_from_a_handoff_set_but_never_clear(api, owner):
    record = _server_record(owner, client_id="m1", rating="useful", rating_reason="clear")
    failed = _server_record(owner, client_id="m2", status="error", error_code="upstream_timeout")

    body = _save(
        api,
        [
            {"id": "m1", "question": "q", "useful": 0},
            {"id": "m1", "question": "q", "useful": 1},
            {"id": "m2", "question": "q", "useful": 1},
            {"id": "m2", "question": "q", "useful": 0, "answer": "page's error text"},
        ],
    )

    assert _results(body) == ["unchanged", "unchanged", "record_not_rateable", "unchanged"]
    record.refresh_from_db()
    assert (record.rating, record.rating_reason) == ("useful", "clear")
    failed.refresh_from_db()
    assert (failed.rating, failed.answer) == ("none", "the full streamed answer")


def test_a_message_of_a_deleted_session_is_not_brought_back(api, owner):
    _save(api, [_legacy(1)])
    ChatSession.objects.update(is_deleted=True)

    body = _save(api, [_legacy(1), _legacy(2)])

    assert _results(body) == ["record_deleted", "created"]
    assert ChatRecord.objects.get(client_id="h5-2").session.is_deleted is False


def test_the_same_message_twice_in_one_array(api, owner):
    body = _save(api, [_legacy(1, answer="part"), _legacy(1, answer="part and rest")])

    assert _results(body) == ["created", "updated"]
    assert ChatRecord.objects.get().answer == "part and rest"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"items": [_legacy(1)] * 201}, 400, "invalid_input"),
        ({"items": "nope"}, 400, "invalid_input"),
        ({}, 400, "invalid_input"),
        ({"items": [], "session_id": "x"}, 400, "invalid_input"),
        (42, 400, "malformed_json"),  # neither an object nor an array
    ],
)
def test_the_request_as_a_whole_is_checked(api, body, status, code):
    response = api.post(URL, body, content_type="application/json")

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert not ChatRecord.objects.exists()


def test_limits_on_size_and_an_empty_list(api):
    assert _save(api, []) == {
        "results": [],
        "counts": {"created": 0, "updated": 0, "unchanged": 0, "error": 0},
    }
    huge = api.post(URL, b"[]", content_type="application/json", CONTENT_LENGTH=str(9 * 2**20))
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "payload_too_large"
    assert Client().post(URL, [], content_type="application/json").status_code == 401
    slash = api.post(URL + "/", [], content_type="application/json")
    assert "Did you mean /api/chat/records/bulk?" in slash.json()["error"]["message"]


def test_a_future_time_within_a_day_is_accepted(api):
    soon = (timezone.now() + timedelta(hours=20)).astimezone(UTC)

    body = _save(api, [_legacy(1, createTime=None, created_at=soon.isoformat())])

    assert _results(body) == ["created"]


def _events(stream: str) -> list[dict]:
    """The JSON of each event frame (the stream's own format is tested elsewhere)."""
    return [
        json.loads(line[len("data: ") :])
        for frame in stream.split("\n\n")
        for line in frame.split("\n")
        if line.startswith("data: {")
    ]


@pytest.mark.django_db(transaction=True)
@override_settings(LLM_MODELS=None, LLM_API_KEY="", CHAT_OFFLINE_TOKENS_PER_SECOND=5000)
async def test_a_real_stream_then_its_handoff_makes_no_duplicate(owner_token):
    auth = {"Authorization": f"Bearer {owner_token}"}
    client = AsyncClient()
    response = await client.post(
        "/api/chat/stream",
        {"question": "你好", "client_id": "web-7", "terminal": "webview"},
        content_type="application/json",
        headers=auth,
    )
    assert response.status_code == 200, response.content
    raw = b"".join([chunk async for chunk in response.streaming_content])
    events = _events(raw.decode())
    text = "".join(e["text"] for e in events if e["type"] == "delta")
    done = next(e for e in events if e["type"] == "done")
    record_id = done["record_id"]
    page_list = [
        {"id": "web-7", "question": "你好", "answer": text[:5], "useful": 1},
        {"id": record_id, "question": "你好", "answer": text},
        {"id": "web-8", "question": "再见", "answer": "bye"},
    ]

    saved = await client.post(URL, page_list, content_type="application/json", headers=auth)

    assert _results(saved.json()) == ["updated", "unchanged", "created"]
    assert {r["session_id"] for r in saved.json()["results"]} == {done["session_id"]}
    record = await ChatRecord.objects.aget(pk=record_id)
    assert (record.answer, record.rating) == (text, "useful")
    assert await ChatRecord.objects.acount() == 2


def test_a_message_saved_concurrently_is_updated_not_duplicated(api, owner, monkeypatch):
    # The stream (or another handoff) saves the same client_id between our look-up and
    # our insert: the unique constraint catches it and the item becomes an update.
    _server_record(owner, client_id="race-1", rating="none")
    monkeypatch.setattr("chat.handoff._load_known_records", lambda batch, items: None)

    body = _save(api, [{"id": "race-1", "question": "q", "useful": 1}])

    assert _results(body) == ["updated"]
    assert ChatRecord.objects.get().rating == "useful"
    assert ChatSession.objects.count() == 1  # the new session rolled back with the insert
