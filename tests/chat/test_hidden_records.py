"""A record staff hid is gone for its owner (history, search, rating, resume, the model's
context, the session list's count and preview) and back once unhidden; staff keep it."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone

from chat.handoff import handoff_save
from chat.models import ChatRecord, ChatSession
from chat.moderation import record_hide, record_unhide
from tests.support.live import stream_chat


@pytest.fixture
def api(owner_token) -> Client:
    return Client(headers={"Authorization": f"Bearer {owner_token}"})


def _conversation(owner) -> tuple[ChatSession, list[ChatRecord]]:
    session = ChatSession.objects.create(owner=owner, title="chat")
    start = timezone.now() - timedelta(minutes=5)
    records = [
        ChatRecord.objects.create(
            session=session,
            owner=owner,
            question=f"问题 {word}",
            answer=f"回答 {word}",
            status="done",
            client_id=f"c-{word}",
            created_at=start + timedelta(seconds=n),
        )
        for n, word in enumerate(["一", "秘密", "三"])
    ]
    return session, records


def _owner_view(api: Client, session: ChatSession, record: ChatRecord) -> dict:
    """Everything the owner's API says about the session and the record."""
    sessions = api.get("/api/chat/sessions/").json()["results"]
    listed = api.get(f"/api/chat/sessions/{session.pk}/records/").json()["results"]
    return {
        "records": [r["question"] for r in listed],
        "count": sessions[0]["record_count"],
        "last": sessions[0]["last_record"]["question"],
        "detail": api.get(f"/api/chat/records/{record.pk}/").status_code,
        "search": [r["question"] for r in api.get("/api/chat/search/?q=秘密").json()["results"]],
        "rating": api.post(
            f"/api/chat/records/{record.pk}/rating",
            {"rating": "useful"},
            content_type="application/json",
        ).status_code,
    }


@pytest.mark.django_db
def test_a_hidden_record_is_gone_from_every_owner_read_and_back_when_unhidden(api, owner, staff):
    session, (_, secret, last) = _conversation(owner)
    visible = _owner_view(api, session, secret)

    record_hide(record=secret, by=staff, note="泄露隐私")
    hidden = _owner_view(api, session, secret)
    record_hide(record=last, by=staff, note="spam")
    without_last = _owner_view(api, session, secret)
    record_unhide(record=secret, by=staff, note="ok")
    record_unhide(record=last, by=staff, note="ok")

    assert visible == {
        "records": ["问题 一", "问题 秘密", "问题 三"],
        "count": 3,
        "last": "问题 三",
        "detail": 200,
        "search": ["问题 秘密"],
        "rating": 200,
    }
    assert hidden == {
        "records": ["问题 一", "问题 三"],
        "count": 2,
        "last": "问题 三",
        "detail": 404,
        "search": [],
        "rating": 404,
    }
    assert (without_last["count"], without_last["last"]) == (1, "问题 一")
    assert _owner_view(api, session, secret) == visible
    assert ChatRecord.objects.count() == 3  # staff still have all of them


@pytest.mark.django_db
def test_the_page_handing_a_hidden_message_over_again_does_not_bring_it_back(owner, staff):
    _, (_, secret, _) = _conversation(owner)
    record_hide(record=secret, by=staff, note="x")

    results = handoff_save(
        owner=owner,
        raw_items=[{"id": "c-秘密", "question": "问题 秘密", "answer": "回答 秘密"}],
        session_id=None,
    )

    assert [(r.result, r.record_id) for r in results] == [("unchanged", secret.pk)]
    assert ChatRecord.objects.visible_to_owner().filter(question="问题 秘密").count() == 0


@pytest.mark.django_db(transaction=True)
async def test_resume_and_stop_answer_404_for_a_hidden_record(
    live_client, owner, owner_token, staff
):
    _, (_, secret, _) = await sync_to_async(_conversation)(owner)
    await sync_to_async(record_hide)(record=secret, by=staff, note="x")
    auth = {"Authorization": f"Bearer {owner_token}"}

    events = await live_client.get(f"/api/chat/records/{secret.pk}/events", headers=auth)
    stop = await live_client.post(f"/api/chat/records/{secret.pk}/stop", headers=auth)

    assert (events.status_code, events.json()["error"]["code"]) == (404, "record_not_found")
    assert (stop.status_code, stop.json()["error"]["code"]) == (404, "record_not_found")


@pytest.mark.django_db(transaction=True)
async def test_the_model_is_not_sent_a_hidden_turn_as_context(
    live_client, owner_token, upstream, staff
):
    first = upstream.script(tokens=["我叫小明。"])
    turn = await stream_chat(live_client, owner_token, {"question": f"记住我的名字 {first.tag}"})
    session_id = turn.done["session_id"]
    secret = upstream.script(tokens=["密码是 1234。"])
    hidden = await stream_chat(
        live_client,
        owner_token,
        {"question": f"我的密码？ {secret.tag}", "session_id": session_id},
    )
    record = await ChatRecord.objects.aget(pk=hidden.done["record_id"])
    await sync_to_async(record_hide)(record=record, by=staff, note="密码")

    after_hide = upstream.script(tokens=["好的。"])
    await stream_chat(
        live_client, owner_token, {"question": f"继续 {after_hide.tag}", "session_id": session_id}
    )
    await sync_to_async(record_unhide)(record=record, by=staff, note="误判")
    after_unhide = upstream.script(tokens=["好的。"])
    await stream_chat(
        live_client, owner_token, {"question": f"再来 {after_unhide.tag}", "session_id": session_id}
    )

    def turns(scenario) -> list[str]:
        return [m["content"] for m in scenario.last_request["messages"][1:]]

    assert turns(after_hide) == [
        f"记住我的名字 {first.tag}",
        "我叫小明。",
        f"继续 {after_hide.tag}",
    ]
    assert f"我的密码？ {secret.tag}" in turns(after_unhide)
    assert "密码是 1234。" in turns(after_unhide)
