"""Writes: open a turn (session + pending record) and save its outcome; the history
API's few small writes (create, rename, soft-delete a session; rate a record).

Each write is one short transaction. Nothing is held open while the answer streams, so
hundreds of concurrent streams on SQLite queue for a few milliseconds each instead of
hitting "database is locked".
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from chat.models import ChatRecord, ChatSession
from chat.selectors import context_messages, record_get, session_get_owned, session_not_found
from chat.turn_store import (
    OPEN_STATUSES,
    NewTurn,
    record_outcome_save,
    records_checkpoint_save,
    turn_insert,
)
from chatproject.errors import ApplicationError

TITLE_MAX_CHARS = 120
# Rated answers are ones the user saw end: `error` turns are failures already recorded
# with their error_code, and rating them would mix outages into answer quality.
RATEABLE_STATUSES = (
    ChatRecord.Status.DONE,
    ChatRecord.Status.STOPPED,
    ChatRecord.Status.INTERRUPTED,
)

_TITLE_LENGTH = 30
# The error code of a record whose generating process died.
SERVER_LOST = "server_lost"


@dataclass(frozen=True)
class OpenedTurn:
    record_id: int
    session_id: int
    messages: list[dict]  # what the model is sent: system prompt, context, question
    owner_id: int


@dataclass(frozen=True)
class TurnOutcome:
    status: str
    answer: str
    error_code: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_token_ms: int | None = None
    finished_at: datetime | None = None


def turn_open(
    *,
    owner_id: int,
    question: str,
    session_id: int | None,
    model_name: str,
    client_id: str = "",
    terminal: str = ChatRecord.Terminal.API,
    question_type: str = "",
) -> OpenedTurn:
    """Save the question before any model call, so it survives whatever happens next."""
    session = None
    if session_id is not None:
        session = session_get_owned(owner_id=owner_id, session_id=session_id)
        if session is None:
            # Same answer for "not yours" and "does not exist": ids are not an oracle.
            raise ApplicationError("session_not_found", "No such chat session.", status=404)
    messages = context_messages(session=session, question=question)
    if client_id and ChatRecord.objects.filter(owner_id=owner_id, client_id=client_id).exists():
        raise _duplicate_client_id()
    turn = NewTurn(
        owner_id=owner_id,
        session_id=session_id,
        title=question.strip()[:_TITLE_LENGTH],
        question=question,
        model_name=model_name,
        client_id=client_id,
        terminal=terminal,
        question_type=question_type,
    )
    try:
        record_id, session_id = turn_insert(turn, now=timezone.now())
    except IntegrityError:
        raise _duplicate_client_id() from None  # a concurrent request won the race
    return OpenedTurn(
        record_id=record_id, session_id=session_id, messages=messages, owner_id=owner_id
    )


def _duplicate_client_id() -> ApplicationError:
    return ApplicationError(
        "duplicate_client_id", "A record with this client_id already exists.", status=409
    )


def record_finish(*, record_id: int, outcome: TurnOutcome) -> None:
    """Save the answer once, at the end: never a write per token."""
    record_outcome_save(
        record_id=record_id,
        status=outcome.status,
        answer=outcome.answer,
        error_code=outcome.error_code,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        first_token_ms=outcome.first_token_ms,
        finished_at=outcome.finished_at or timezone.now(),
    )


def records_checkpoint(*, partial_answers: dict[int, str]) -> None:
    """Save each live answer so far and refresh its heartbeat: what survives a crash.

    This is also where a record becomes `streaming` (once it has text): one batch every
    few seconds for all answers, instead of one more write per answer."""
    records_checkpoint_save(partial_answers=partial_answers, now=timezone.now())


def records_reap(*, stale_after_seconds: float, exclude_ids: Iterable[int] = ()) -> list[int]:
    """Close records whose generating process died: status `interrupted`, the answer as of
    its last checkpoint, error code `server_lost`. A live answer's heartbeat is fresh."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=stale_after_seconds)
    stale = ChatRecord.objects.filter(status__in=OPEN_STATUSES, heartbeat_at__lt=cutoff)
    stale = stale.exclude(pk__in=list(exclude_ids))
    with transaction.atomic():
        ids = list(stale.select_for_update().values_list("pk", flat=True))
        ChatRecord.objects.filter(pk__in=ids, status__in=OPEN_STATUSES).update(
            status=ChatRecord.Status.INTERRUPTED, error_code=SERVER_LOST, finished_at=now
        )
    return ids


def record_lost_close(*, record_id: int, generated_text: str) -> ChatRecord:
    """Close one record whose process died, as the reaper does, but keep the longer of its
    checkpoint and `generated_text`: the text of its event log in Redis, which the process
    mirrored up to its last 20 ms where the checkpoint may be seconds old (both are the
    start of the same answer). A record the reaper closed first gets the longer text too;
    a record closed any other way is left as it is. Returns the record as saved."""
    with transaction.atomic():
        record = ChatRecord.objects.select_for_update().get(pk=record_id)
        if record.status not in OPEN_STATUSES and record.error_code != SERVER_LOST:
            return record
        if len(generated_text) > len(record.answer):
            record.answer = generated_text
        record.status = ChatRecord.Status.INTERRUPTED
        record.error_code = SERVER_LOST
        record.finished_at = record.finished_at or timezone.now()
        record.save(update_fields=["answer", "status", "error_code", "finished_at"])
    return record


# --- History ------------------------------------------------------------------------------


def session_create(*, owner: User, title: str) -> ChatSession:
    return ChatSession.objects.create(owner=owner, title=title.strip()[:TITLE_MAX_CHARS])


def session_rename(*, owner: User, session_id: int, title: str) -> None:
    # A rename is not chat activity: `updated_at` (the list order) stays put.
    renamed = ChatSession.objects.filter(pk=session_id, owner=owner, is_deleted=False).update(
        title=title.strip()[:TITLE_MAX_CHARS]
    )
    if not renamed:
        raise session_not_found()


def session_soft_delete(*, owner: User, session_id: int) -> None:
    """Hide the session and its records from the user; staff still see them in the admin."""
    deleted = ChatSession.objects.filter(pk=session_id, owner=owner, is_deleted=False).update(
        is_deleted=True
    )
    if not deleted:
        raise session_not_found()


def record_rate(*, owner: User, record_id: int, rating: str, reason: str) -> ChatRecord:
    """Set the rating (and its reason) to exactly this; the same call twice changes nothing."""
    record = record_get(owner=owner, record_id=record_id)
    reason = reason.strip() if rating != ChatRecord.Rating.NONE else ""
    # Conditional on the status in the same statement: a stream finishing concurrently
    # cannot slip a rating onto a record that was still pending.
    rated = ChatRecord.objects.filter(pk=record.pk, status__in=RATEABLE_STATUSES).update(
        rating=rating, rating_reason=reason
    )
    if not rated:
        raise ApplicationError(
            "record_not_rateable",
            "Only answers that are done, stopped or interrupted can be rated.",
            status=409,
        )
    record.rating, record.rating_reason = rating, reason
    return record
