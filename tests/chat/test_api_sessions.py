"""The session list as a chat app shows it: newest activity first, a page at a time."""

import base64
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from chat.models import ChatRecord, ChatSession

pytestmark = pytest.mark.django_db

SESSIONS = "/api/chat/sessions/"


@pytest.fixture
def api(owner_token) -> Client:
    return Client(headers={"Authorization": f"Bearer {owner_token}"})


def _session(owner, *, minutes_ago: int = 0, **fields) -> ChatSession:
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return ChatSession.objects.create(owner=owner, created_at=at, updated_at=at, **fields)


def _record(session, **fields) -> ChatRecord:
    fields = {"question": "q", "answer": "a", "status": "done", **fields}
    return ChatRecord.objects.create(session=session, owner=session.owner, **fields)


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


def _all_pages(api: Client, url: str) -> list[list[dict]]:
    pages = []
    while url:
        body = api.get(url).json()
        pages.append(body["results"])
        url = body["next"]
    return pages


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", SESSIONS),
        ("post", SESSIONS),
        ("get", "/api/chat/sessions/1/"),
        ("patch", "/api/chat/sessions/1/"),
        ("delete", "/api/chat/sessions/1/"),
        ("get", "/api/chat/sessions/1/records/"),
    ],
)
def test_every_session_endpoint_needs_a_valid_token(method, url):
    missing = getattr(Client(), method)(url)
    _error(missing, 401, "not_authenticated")
    assert missing["WWW-Authenticate"] == 'Bearer realm="api"'
    forged = getattr(Client(headers={"Authorization": "Bearer abc:def"}), method)(url)
    _error(forged, 401, "invalid_token")


def test_sessions_are_listed_newest_activity_first_with_a_preview_and_a_count(api, owner, other):
    old = _session(owner, minutes_ago=30, title="old")
    new = _session(owner, minutes_ago=1, title="new")
    empty = _session(owner, minutes_ago=10, title="empty")
    _session(owner, minutes_ago=0, title="gone", is_deleted=True)
    _session(other, minutes_ago=0, title="not mine")
    _record(old, question="first", created_at=timezone.now() - timedelta(minutes=31))
    latest = _record(old, question="长" * 150, answer="答" * 150, status="interrupted")
    _record(new, question="hello")

    body = api.get(SESSIONS).json()

    assert [s["title"] for s in body["results"]] == ["new", "empty", "old"]
    assert body["next"] is None
    assert body["previous"] is None
    by_title = {s["title"]: s for s in body["results"]}
    assert by_title["old"]["record_count"] == 2
    assert by_title["old"]["last_record"] == {
        "id": latest.pk,
        "question": "长" * 100,
        "answer": "答" * 100,
        "status": "interrupted",
        "created_at": by_title["old"]["last_record"]["created_at"],
    }
    assert by_title["empty"]["id"] == empty.pk
    assert by_title["empty"]["record_count"] == 0
    assert by_title["empty"]["last_record"] is None


def test_session_pages_cover_every_session_once_even_with_equal_times(api, owner):
    at = timezone.now()
    for i in range(7):
        # Three share one timestamp: the cursor must not skip or repeat them.
        minutes = 0 if i < 3 else i
        ChatSession.objects.create(
            owner=owner, title=f"s{i}", updated_at=at - timedelta(minutes=minutes)
        )

    pages = _all_pages(api, SESSIONS + "?page_size=2")

    assert [len(p) for p in pages] == [2, 2, 2, 1]
    titles = [s["title"] for page in pages for s in page]
    assert sorted(titles) == sorted(f"s{i}" for i in range(7))
    assert titles[3:] == ["s3", "s4", "s5", "s6"]


def test_previous_link_leads_back_to_the_newer_page(api, owner):
    for i in range(5):
        _session(owner, minutes_ago=i, title=f"s{i}")

    first = api.get(SESSIONS + "?page_size=2").json()
    second = api.get(first["next"]).json()
    back = api.get(second["previous"]).json()

    assert [s["title"] for s in second["results"]] == ["s2", "s3"]
    assert back["results"] == first["results"]


def test_page_size_goes_up_to_100(api, owner):
    ChatSession.objects.bulk_create(ChatSession(owner=owner) for _ in range(120))

    assert len(api.get(SESSIONS).json()["results"]) == 20
    assert len(api.get(SESSIONS, {"page_size": 100}).json()["results"]) == 100


@pytest.mark.parametrize("page_size", ["0", "101", "x", "-1", "", "٣"])
def test_a_bad_page_size_is_refused(api, page_size):
    error = _error(api.get(SESSIONS, {"page_size": page_size}), 400, "invalid_input")
    assert "page_size" in error["fields"]


@pytest.mark.parametrize(
    "cursor",
    [
        "not-base64!",
        base64.b64encode(b"p=yesterday").decode(),
        base64.b64encode(b"p=9999-12-31 23:59:59-14:00").decode(),
        base64.b64encode(b"o=-1").decode(),
    ],
)
def test_a_bad_cursor_is_a_400_not_a_crash(api, owner, cursor):
    _session(owner)

    _error(api.get(SESSIONS, {"cursor": cursor}), 400, "invalid_cursor")


def test_a_session_list_costs_the_same_few_queries_for_any_page(
    api, owner, django_assert_max_num_queries
):
    for i in range(20):
        _record(_session(owner, minutes_ago=i))

    with django_assert_max_num_queries(4):  # token, page, previews, last-seen touch
        body = api.get(SESSIONS).json()

    assert all(s["last_record"] for s in body["results"])


def test_create_a_session(api, owner):
    response = api.post(SESSIONS, {"title": "  旅行计划  "}, content_type="application/json")

    assert response.status_code == 201
    body = response.json()
    assert body["title"] == "旅行计划"
    assert body["record_count"] == 0
    assert ChatSession.objects.get(pk=body["id"]).owner == owner
    blank = api.post(SESSIONS, {}, content_type="application/json")
    assert blank.status_code == 201
    assert blank.json()["title"] == ""


def test_create_refuses_a_long_title_and_non_json(api):
    long = api.post(SESSIONS, {"title": "x" * 121}, content_type="application/json")
    assert "title" in _error(long, 400, "invalid_input")["fields"]
    _error(api.post(SESSIONS, "{oops", content_type="application/json"), 400, "malformed_json")
    _error(api.post(SESSIONS, {"title": "t"}), 415, "unsupported_media_type")
    assert not ChatSession.objects.exists()


def test_rename_keeps_the_place_in_the_list(api, owner):
    session = _session(owner, minutes_ago=5, title="old")
    before = ChatSession.objects.get(pk=session.pk).updated_at

    response = api.patch(
        f"{SESSIONS}{session.pk}/", {"title": "new"}, content_type="application/json"
    )

    assert response.status_code == 200
    assert response.json()["title"] == "new"
    session.refresh_from_db()
    assert (session.title, session.updated_at) == ("new", before)
    untouched = api.patch(f"{SESSIONS}{session.pk}/", {}, content_type="application/json")
    assert untouched.json()["title"] == "new"


def test_soft_delete_hides_the_session_and_its_records(api, owner):
    session = _session(owner, title="secret")
    record = _record(session, question="secret question")
    url = f"{SESSIONS}{session.pk}/"

    assert api.delete(url).status_code == 204

    session.refresh_from_db()
    assert session.is_deleted
    assert ChatRecord.objects.filter(pk=record.pk).exists()  # staff still see it
    assert api.get(SESSIONS).json()["results"] == []
    _error(api.get(url), 404, "session_not_found")
    _error(api.get(url + "records/"), 404, "session_not_found")
    _error(api.get(f"/api/chat/records/{record.pk}/"), 404, "record_not_found")
    assert api.get("/api/chat/search/", {"q": "secret"}).json()["results"] == []
    _error(api.delete(url), 404, "session_not_found")


def test_someone_elses_session_looks_exactly_like_a_missing_one(api, other):
    theirs = _session(other, title="theirs")
    url = f"{SESSIONS}{theirs.pk}/"
    missing = f"{SESSIONS}{theirs.pk + 1000}/"

    for call in (
        lambda u: api.get(u),
        lambda u: api.patch(u, {"title": "mine now"}, content_type="application/json"),
        lambda u: api.delete(u),
        lambda u: api.get(u + "records/"),
    ):
        assert call(url).json() == call(missing).json()
        _error(call(url), 404, "session_not_found")
    theirs.refresh_from_db()
    assert (theirs.title, theirs.is_deleted) == ("theirs", False)


def test_wrong_method_is_a_json_405_naming_the_allowed_ones(api, owner):
    session = _session(owner)

    put = api.put(f"{SESSIONS}{session.pk}/", {}, content_type="application/json")
    _error(put, 405, "method_not_allowed")
    # HEAD is answered as GET, and named like on every other path of the API.
    assert put["Allow"] == "GET, PATCH, DELETE, HEAD, OPTIONS"
    _error(api.delete(SESSIONS), 405, "method_not_allowed")
    assert api.get(SESSIONS)["Allow"] == "GET, POST, HEAD, OPTIONS"
    assert api.head(SESSIONS).status_code == 200


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("/api/chat/sessions", "/api/chat/sessions/"),
        ("/api/chat/sessions/1", "/api/chat/sessions/1/"),
        ("/api/chat/sessions/1/records", "/api/chat/sessions/1/records/"),
        ("/api/chat/search", "/api/chat/search/"),
    ],
)
def test_the_other_slash_form_is_a_json_404_with_a_hint(api, url, hint):
    error = _error(api.get(url), 404, "not_found")
    assert f"Did you mean {hint}?" in error["message"]


def test_an_id_too_big_for_the_database_is_a_404(api):
    _error(api.get(f"{SESSIONS}{'9' * 30}/"), 404, "not_found")
    _error(api.get(f"{SESSIONS}{2**63 - 1}/"), 404, "not_found")
