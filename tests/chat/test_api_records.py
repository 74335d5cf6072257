"""A session's records as a chat screen loads them: the latest page first, each page in
reading order, older pages as the user scrolls up; one record; search."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from chat.models import ChatRecord, ChatSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(owner_token) -> Client:
    return Client(headers={"Authorization": f"Bearer {owner_token}"})


@pytest.fixture
def session(owner) -> ChatSession:
    return ChatSession.objects.create(owner=owner, title="chat")


def _records(session, count: int, *, same_time: bool = False) -> list[ChatRecord]:
    start = timezone.now() - timedelta(hours=1)
    return [
        ChatRecord.objects.create(
            session=session,
            owner=session.owner,
            question=f"q{i}",
            answer=f"a{i}",
            status="done",
            created_at=start if same_time else start + timedelta(seconds=i),
        )
        for i in range(count)
    ]


def _url(session) -> str:
    return f"/api/chat/sessions/{session.pk}/records/"


def _questions(body: dict) -> list[str]:
    return [r["question"] for r in body["results"]]


def test_first_page_is_the_latest_records_in_reading_order(api, session):
    _records(session, 25)

    newest = api.get(_url(session)).json()

    assert _questions(newest) == [f"q{i}" for i in range(5, 25)]
    assert newest["after"] is None
    older = api.get(newest["before"]).json()
    assert _questions(older) == [f"q{i}" for i in range(5)]
    assert older["before"] is None
    assert _questions(api.get(older["after"]).json()) == _questions(newest)


def test_scrolling_up_visits_every_record_once_even_with_equal_times(api, session):
    # Handoff records carry second-resolution legacy times: many share one.
    _records(session, 11, same_time=True)

    seen, url = [], _url(session) + "?page_size=4"
    while url:
        page = api.get(url).json()
        seen = page["results"] + seen
        url = page["before"]

    assert [r["question"] for r in seen] == [f"q{i}" for i in range(11)]


def test_new_answers_arriving_do_not_shift_older_pages(api, session):
    _records(session, 6)
    newest = api.get(_url(session) + "?page_size=3").json()
    ChatRecord.objects.create(session=session, owner=session.owner, question="late")

    older = api.get(newest["before"]).json()

    assert _questions(older) == ["q0", "q1", "q2"]


@pytest.mark.parametrize("count", [0, 1, 20])
def test_a_session_that_fits_one_page_has_no_before(api, session, count):
    _records(session, count)

    body = api.get(_url(session)).json()

    assert len(body["results"]) == count
    assert body["before"] is None
    assert body["after"] is None


def test_a_record_shows_how_its_answer_ended(api, session):
    record = ChatRecord.objects.create(
        session=session,
        owner=session.owner,
        question="长问题",
        answer="部分",
        status="error",
        error_code="upstream_timeout",
        model_name="gpt-4o-mini",
        client_id="m-1",
        prompt_tokens=12,
        first_token_ms=80,
    )

    body = api.get(f"/api/chat/records/{record.pk}/").json()

    assert body == body | {
        "id": record.pk,
        "session_id": session.pk,
        "question": "长问题",
        "answer": "部分",
        "status": "error",
        "error_code": "upstream_timeout",
        "model": "gpt-4o-mini",
        "rating": "none",
        "client_id": "m-1",
        "first_token_ms": 80,
        "finished_at": None,
        "usage": {"prompt_tokens": 12, "completion_tokens": None, "total_tokens": None},
    }
    listed = api.get(_url(session)).json()["results"][0]
    assert listed == body
    interrupted = ChatRecord.objects.create(
        session=session, owner=session.owner, question="q", status="interrupted"
    )
    shown = api.get(f"/api/chat/records/{interrupted.pk}/").json()
    assert (shown["status"], shown["error_code"], shown["client_id"]) == ("interrupted", None, None)


def test_someone_elses_record_looks_exactly_like_a_missing_one(api, other):
    theirs = ChatSession.objects.create(owner=other)
    record = ChatRecord.objects.create(session=theirs, owner=other, question="private")

    mine = api.get(f"/api/chat/records/{record.pk}/")
    missing = api.get(f"/api/chat/records/{record.pk + 1000}/")

    assert mine.status_code == missing.status_code == 404
    assert mine.json() == missing.json()
    assert mine.json()["error"]["code"] == "record_not_found"


def test_search_finds_own_questions_and_answers_by_every_word(api, owner, other, session):
    now = timezone.now()
    hits = [
        ChatRecord.objects.create(
            session=session, owner=owner, question="How to cook RICE", answer="Boil water",
            created_at=now - timedelta(minutes=2),
        ),
        ChatRecord.objects.create(
            session=session, owner=owner, question="米饭怎么做", answer="先煮 rice 再焖",
            created_at=now - timedelta(minutes=1),
        ),
    ]  # fmt: skip
    ChatRecord.objects.create(session=session, owner=owner, question="weather", answer="sunny")
    theirs = ChatSession.objects.create(owner=other)
    ChatRecord.objects.create(session=theirs, owner=other, question="rice for Bob")

    body = api.get("/api/chat/search/", {"q": "rice"}).json()

    assert [r["id"] for r in body["results"]] == [hits[1].pk, hits[0].pk]
    assert body["results"][0]["session_title"] == "chat"
    assert _questions(api.get("/api/chat/search/", {"q": "  cook   water "}).json()) == [
        "How to cook RICE"
    ]
    assert _questions(api.get("/api/chat/search/", {"q": "焖"}).json()) == ["米饭怎么做"]
    assert api.get("/api/chat/search/", {"q": "100%_"}).json()["results"] == []


def test_search_pages_newest_first(api, session):
    _records(session, 5)

    first = api.get("/api/chat/search/", {"q": "q", "page_size": 2}).json()
    second = api.get(first["next"]).json()

    assert _questions(first) == ["q4", "q3"]
    assert _questions(second) == ["q2", "q1"]


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}, {"q": "x" * 101}])
def test_search_needs_a_short_query(api, params):
    response = api.get("/api/chat/search/", params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert "q" in response.json()["error"]["fields"]
