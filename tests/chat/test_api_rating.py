"""Rating an answer: useful / not useful / none, on answers the user saw end."""

import pytest
from django.test import Client

from chat.models import ChatRecord, ChatSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(owner_token) -> Client:
    return Client(headers={"Authorization": f"Bearer {owner_token}"})


def _record(owner, *, status: str = "done", deleted: bool = False) -> ChatRecord:
    session = ChatSession.objects.create(owner=owner, is_deleted=deleted)
    return ChatRecord.objects.create(
        session=session, owner=owner, question="q", answer="a", status=status
    )


def _rate(api: Client, record_id: int, body: dict):
    url = f"/api/chat/records/{record_id}/rating"
    return api.post(url, body, content_type="application/json")


@pytest.mark.parametrize("status", ["done", "stopped", "interrupted"])
def test_a_finished_answer_can_be_rated_and_the_same_rating_twice_is_a_no_op(api, owner, status):
    record = _record(owner, status=status)

    first = _rate(api, record.pk, {"rating": "not_useful", "reason": "  太笼统  "})
    again = _rate(api, record.pk, {"rating": "not_useful", "reason": "太笼统"})

    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert (first.json()["rating"], first.json()["rating_reason"]) == ("not_useful", "太笼统")
    record.refresh_from_db()
    assert (record.rating, record.rating_reason, record.status) == ("not_useful", "太笼统", status)


def test_each_rating_replaces_the_last_and_none_clears_the_reason(api, owner):
    record = _record(owner)

    _rate(api, record.pk, {"rating": "useful", "reason": "clear"})
    changed = _rate(api, record.pk, {"rating": "not_useful"}).json()
    _rate(api, record.pk, {"rating": "useful", "reason": "ok"})
    cleared = _rate(api, record.pk, {"rating": "none", "reason": "ignored"}).json()

    assert (changed["rating"], changed["rating_reason"]) == ("not_useful", "")
    assert (cleared["rating"], cleared["rating_reason"]) == ("none", "")


@pytest.mark.parametrize("status", ["pending", "streaming", "error"])
def test_an_unfinished_or_failed_answer_cannot_be_rated(api, owner, status):
    record = _record(owner, status=status)

    response = _rate(api, record.pk, {"rating": "useful"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "record_not_rateable"
    record.refresh_from_db()
    assert record.rating == "none"


@pytest.mark.parametrize(
    "body",
    [{}, {"rating": "great"}, {"rating": 1}, {"rating": "useful", "reason": "x" * 201}],
)
def test_bad_rating_input_is_refused(api, owner, body):
    record = _record(owner)

    response = _rate(api, record.pk, body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    record.refresh_from_db()
    assert record.rating == "none"


def test_someone_elses_or_a_deleted_record_cannot_be_rated_or_probed(api, owner, other):
    theirs = _record(other)
    gone = _record(owner, deleted=True)

    answers = [_rate(api, pk, {"rating": "useful"}) for pk in (theirs.pk, gone.pk, 10**12)]

    assert {r.status_code for r in answers} == {404}
    assert len({r.content for r in answers}) == 1
    assert answers[0].json()["error"]["code"] == "record_not_found"
    theirs.refresh_from_db()
    assert theirs.rating == "none"


def test_rating_needs_a_token_and_post(api, owner):
    record = _record(owner)
    url = f"/api/chat/records/{record.pk}/rating"

    assert (
        Client().post(url, {"rating": "useful"}, content_type="application/json").status_code == 401
    )
    assert api.get(url).status_code == 405
    slash = api.post(url + "/", {"rating": "useful"}, content_type="application/json")
    assert slash.status_code == 404
    assert f"Did you mean {url}?" in slash.json()["error"]["message"]
