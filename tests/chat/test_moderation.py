"""Moderation services: each action changes the record and logs who, when and why; the
review queue; the moderator group; where a record came from."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from chat.handoff import handoff_save
from chat.models import ChatRecord, ChatSession, ModerationEvent
from chat.moderation import (
    MODERATOR_GROUP,
    record_flag,
    record_hide,
    record_mark_reviewed,
    record_unhide,
    records_moderate,
    review_queue,
)
from chat.services import TurnOutcome, record_finish, turn_open

pytestmark = pytest.mark.django_db


def _record(owner, **fields) -> ChatRecord:
    session = ChatSession.objects.create(owner=owner)
    values = {"question": "q", "answer": "a", "status": "done", **fields}
    return ChatRecord.objects.create(session=session, owner=owner, **values)


def _log(record: ChatRecord) -> list[tuple]:
    events = ModerationEvent.objects.filter(record=record).order_by("pk")
    return [(e.action, e.note, e.by_id) for e in events]


def test_each_action_changes_the_record_and_logs_who_when_and_why(owner, staff):
    record = _record(owner)
    before = timezone.now()

    assert record_flag(record=record, by=staff, note="  看起来不对  ")
    flagged = (record.moderation, record.is_hidden)
    assert record_hide(record=record, by=staff, note="含个人信息")
    hidden = (record.moderation, record.is_hidden)
    assert record_unhide(record=record, by=staff, note="误判")
    assert record_mark_reviewed(record=record, by=staff)

    assert flagged == ("flagged", False)
    assert hidden == ("reviewed", True)
    record.refresh_from_db()
    assert (record.moderation, record.is_hidden) == ("reviewed", False)
    assert _log(record) == [
        ("flagged", "看起来不对", staff.pk),
        ("hidden", "含个人信息", staff.pk),
        ("unhidden", "误判", staff.pk),
        ("reviewed", "", staff.pk),
    ]
    times = list(record.moderation_events.values_list("created_at", flat=True))
    assert all(before <= when <= timezone.now() for when in times)


def test_hiding_a_hidden_record_or_unhiding_a_visible_one_does_nothing(owner, staff):
    record = _record(owner)

    assert not record_unhide(record=record, by=staff, note="x")
    assert record_hide(record=record, by=staff, note="spam")
    assert not record_hide(record=record, by=staff, note="spam again")

    assert _log(record) == [("hidden", "spam", staff.pk)]


def test_an_automatic_hide_is_logged_without_a_person(owner):
    record = _record(owner)

    record_hide(record=record, by=None, note="content check: blocked")

    assert _log(record) == [("hidden", "content check: blocked", None)]
    record.refresh_from_db()
    assert record.is_hidden


def test_a_selection_is_moderated_in_one_go_with_one_event_per_changed_record(owner, staff):
    records = [_record(owner) for _ in range(3)]
    record_hide(record=records[0], by=staff, note="first")

    done = records_moderate(
        records=ChatRecord.objects.filter(pk__in=[r.pk for r in records]),
        action="hidden",
        by=staff,
        note="batch",
    )

    assert done == [records[1].pk, records[2].pk]
    assert ChatRecord.objects.filter(is_hidden=True).count() == 3
    assert ModerationEvent.objects.filter(note="batch").count() == 2


def test_the_review_queue_holds_unreviewed_not_useful_and_flagged_records_oldest_first(
    owner, staff
):
    now = timezone.now()
    flagged_late = _record(owner, created_at=now - timedelta(hours=1))
    not_useful_early = _record(owner, rating="not_useful", created_at=now - timedelta(hours=3))
    not_useful_reviewed = _record(owner, rating="not_useful", created_at=now - timedelta(hours=2))
    _record(owner, rating="useful")
    _record(owner)
    record_flag(record=flagged_late, by=staff, note="odd")
    record_mark_reviewed(record=not_useful_reviewed, by=staff)

    assert list(review_queue()) == [not_useful_early, flagged_late]

    record_mark_reviewed(record=flagged_late, by=staff, note="fine")
    record_flag(record=not_useful_reviewed, by=staff, note="look again")
    assert list(review_queue()) == [not_useful_early, not_useful_reviewed]


def test_the_moderator_group_may_view_and_moderate_but_change_nothing():
    group = Group.objects.get(name=MODERATOR_GROUP)

    granted = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}

    assert granted == {
        "chat.view_chatrecord",
        "chat.moderate_chatrecord",
        "chat.view_chatsession",
        "accounts.view_user",
    }


@pytest.mark.django_db(transaction=True)
def test_the_migration_tells_handoff_rows_from_streamed_ones(owner):
    """Rows saved before `source` existed: the stream always set a heartbeat (and a finish
    time), the handoff never did."""
    executor = MigrationExecutor(connection)
    executor.migrate([("chat", "0002_heartbeat")])
    old = executor.loader.project_state([("chat", "0002_heartbeat")]).apps
    Session, Record = old.get_model("chat", "ChatSession"), old.get_model("chat", "ChatRecord")
    session = Session.objects.create(owner_id=owner.pk)
    now = timezone.now()

    def row(question: str, **fields) -> int:
        return Record.objects.create(
            session=session, owner_id=owner.pk, question=question, **fields
        ).pk

    streamed = row("s", status="done", heartbeat_at=now, finished_at=now)
    reaped = row("r", status="interrupted", heartbeat_at=now, finished_at=now)
    before_heartbeats = row("b", status="done", finished_at=now)
    handed_over = row("h", status="done")
    handed_over_empty = row("e", status="interrupted")

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    sources = dict(ChatRecord.objects.values_list("pk", "source"))
    assert sources == {
        streamed: "stream",
        reaped: "stream",
        before_heartbeats: "stream",
        handed_over: "handoff",
        handed_over_empty: "handoff",
    }


def test_a_streamed_record_and_a_handed_over_one_say_where_they_came_from(owner):
    turn = turn_open(owner_id=owner.pk, question="流式", session_id=None, model_name="m")
    record_finish(record_id=turn.record_id, outcome=TurnOutcome(status="done", answer="答"))
    results = handoff_save(
        owner=owner,
        raw_items=[
            {"id": "page-1", "question": "页面", "answer": "页面的回答"},
            {"record_id": turn.record_id, "question": "流式", "useful": 2},
        ],
        session_id=None,
    )

    assert [r.result for r in results] == ["created", "updated"]
    sources = dict(ChatRecord.objects.values_list("question", "source"))
    assert sources == {"流式": "stream", "页面": "handoff"}
