"""The stream endpoint's hand-written SQL writes the same rows the models would."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat.models import ChatRecord, ChatSession
from chat.services import TurnOutcome, record_finish, records_checkpoint, turn_open
from chat.turn_store import NewTurn, turn_insert

pytestmark = pytest.mark.django_db


def _fields(record: ChatRecord, *exclude: str) -> dict:
    skip = {"id", "session", "created_at", "heartbeat_at", *exclude}
    return {f.name: getattr(record, f.name) for f in ChatRecord._meta.fields if f.name not in skip}


def test_a_new_turn_is_a_pending_record_with_model_defaults_in_a_new_session(owner):
    question = '  你好，介绍一下流式输出 😀 "quoted"\n第二行  '
    before = timezone.now()

    turn = turn_open(
        owner_id=owner.pk, question=question, session_id=None, model_name="m",
        client_id="c-1", terminal="miniprogram", question_type="consult",
    )  # fmt: skip

    record = ChatRecord.objects.get(pk=turn.record_id)
    expected = ChatRecord(
        owner=owner, question=question, model_name="m", client_id="c-1",
        terminal="miniprogram", question_type="consult",
    )  # fmt: skip
    assert _fields(record) == _fields(expected)
    assert record.session_id == turn.session_id
    assert before <= record.created_at == record.heartbeat_at <= timezone.now()
    session = ChatSession.objects.get(pk=turn.session_id)
    assert (session.owner_id, session.title, session.is_deleted) == (
        owner.pk,
        question.strip()[:30],
        False,
    )
    assert session.created_at == session.updated_at == record.created_at
    assert turn.messages[-1] == {"role": "user", "content": question}


def test_a_turn_in_an_existing_session_moves_its_updated_at_forward_only(owner):
    first = turn_open(owner_id=owner.pk, question="one", session_id=None, model_name="m")
    future = timezone.now() + timedelta(hours=1)
    ChatSession.objects.filter(pk=first.session_id).update(updated_at=future)

    second = turn_open(
        owner_id=owner.pk, question="two", session_id=first.session_id, model_name="m"
    )

    assert second.session_id == first.session_id
    assert ChatSession.objects.get(pk=first.session_id).updated_at == future
    ChatSession.objects.filter(pk=first.session_id).update(updated_at=future - timedelta(days=1))
    third = turn_open(owner_id=owner.pk, question="3", session_id=first.session_id, model_name="m")
    record = ChatRecord.objects.get(pk=third.record_id)
    assert ChatSession.objects.get(pk=first.session_id).updated_at == record.created_at


def test_finishing_saves_the_outcome_once_and_never_over_a_closed_record(owner):
    turn = turn_open(owner_id=owner.pk, question="q", session_id=None, model_name="m")
    finished_at = timezone.now()
    outcome = TurnOutcome(
        status="done", answer="答案 ✅\n", prompt_tokens=12, completion_tokens=34,
        first_token_ms=56, finished_at=finished_at,
    )  # fmt: skip

    record_finish(record_id=turn.record_id, outcome=outcome)
    record_finish(record_id=turn.record_id, outcome=TurnOutcome(status="error", answer=""))

    record = ChatRecord.objects.get(pk=turn.record_id)
    assert (record.status, record.answer, record.error_code) == ("done", "答案 ✅\n", "")
    assert (record.prompt_tokens, record.completion_tokens, record.first_token_ms) == (12, 34, 56)
    assert record.finished_at == finished_at


def test_an_error_outcome_keeps_its_code_and_null_usage(owner):
    turn = turn_open(owner_id=owner.pk, question="q", session_id=None, model_name="m")

    record_finish(
        record_id=turn.record_id,
        outcome=TurnOutcome(status="error", answer="part", error_code="upstream_timeout"),
    )

    record = ChatRecord.objects.get(pk=turn.record_id)
    assert (record.status, record.answer, record.error_code) == (
        "error",
        "part",
        "upstream_timeout",
    )
    assert (record.prompt_tokens, record.first_token_ms) == (None, None)
    assert record.finished_at is not None


def test_a_checkpoint_saves_live_answers_so_far_and_leaves_finished_ones_alone(owner):
    live, quiet, done = (
        turn_open(owner_id=owner.pk, question=q, session_id=None, model_name="m")
        for q in ("live", "quiet", "done")
    )
    record_finish(record_id=done.record_id, outcome=TurnOutcome(status="done", answer="final"))
    ChatRecord.objects.update(heartbeat_at=timezone.now() - timedelta(minutes=1))
    before = timezone.now()

    records_checkpoint(
        partial_answers={live.record_id: "部分 answer", quiet.record_id: "", done.record_id: "x"}
    )

    rows = {r.pk: r for r in ChatRecord.objects.all()}
    assert (rows[live.record_id].status, rows[live.record_id].answer) == (
        "streaming",
        "部分 answer",
    )
    assert (rows[quiet.record_id].status, rows[quiet.record_id].answer) == ("pending", "")
    assert (rows[done.record_id].status, rows[done.record_id].answer) == ("done", "final")
    assert rows[live.record_id].heartbeat_at >= before
    assert rows[quiet.record_id].heartbeat_at >= before
    assert rows[done.record_id].heartbeat_at < before


@pytest.mark.parametrize("in_existing_session", [False, True])
def test_a_client_id_saved_concurrently_is_djangos_integrity_error_and_leaves_nothing(
    owner, in_existing_session
):
    # turn_open checks the client_id first; a concurrent request can still win the race
    # between that check and the insert, and must surface as the error turn_open maps
    # to 409, with no empty session left behind.
    session_id = None
    if in_existing_session:
        session_id = turn_open(
            owner_id=owner.pk, question="q", session_id=None, model_name="m"
        ).session_id
    turn = NewTurn(
        owner_id=owner.pk, session_id=session_id, title="t", question="q", model_name="m",
        client_id="same", terminal="api", question_type="",
    )  # fmt: skip
    turn_insert(turn, now=timezone.now())
    sessions, records = ChatSession.objects.count(), ChatRecord.objects.count()

    with pytest.raises(IntegrityError), transaction.atomic():
        turn_insert(turn, now=timezone.now())

    assert (ChatSession.objects.count(), ChatRecord.objects.count()) == (sessions, records)
