"""Reads: what the stream endpoint needs to know before it asks the model, and the
caller's history (sessions, records, search) that the history API pages through.

Everything takes the owner, so another user's ids behave exactly like ids that do not
exist, and records of a deleted session are gone from every read, and so are records
staff hid (`ChatRecord.objects.visible_to_owner()`).
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Substr
from django.utils import timezone

from accounts.models import User
from chat.models import ChatRecord, ChatSession
from chatproject.errors import ApplicationError

PREVIEW_CHARS = 100
SEARCH_MAX_TERMS = 5

# Turns worth showing the model again: finished ones with an answer, even if cut short.
_CONTEXT_STATUSES = (
    ChatRecord.Status.DONE,
    ChatRecord.Status.STOPPED,
    ChatRecord.Status.INTERRUPTED,
)


def session_get_owned(*, owner_id: int, session_id: int) -> ChatSession | None:
    return ChatSession.objects.filter(pk=session_id, owner_id=owner_id, is_deleted=False).first()


def record_get_owned(*, owner_id: int, record_id: int) -> ChatRecord | None:
    """The owner's record, unless its session was deleted or staff hid it (then it is gone,
    as in the history API)."""
    return (
        ChatRecord.objects.visible_to_owner()
        .filter(pk=record_id, owner_id=owner_id, session__is_deleted=False)
        .first()
    )


def record_status(*, record_id: int) -> str:
    return ChatRecord.objects.filter(pk=record_id).values_list("status", flat=True).get()


def record_heartbeat_stale(*, record_id: int, stale_after_seconds: float) -> bool:
    """Whether the process generating this record stopped refreshing its heartbeat this
    long ago: the reaper's test of a dead process."""
    cutoff = timezone.now() - timedelta(seconds=stale_after_seconds)
    return ChatRecord.objects.filter(pk=record_id, heartbeat_at__lt=cutoff).exists()


def context_messages(*, session: ChatSession | None, question: str) -> list[dict]:
    """System prompt, the session's last N answered turns, then the new question."""
    messages: list[dict] = []
    if settings.CHAT_SYSTEM_PROMPT:
        messages.append({"role": "system", "content": settings.CHAT_SYSTEM_PROMPT})
    turns = settings.CHAT_CONTEXT_TURNS
    if turns and session is not None:
        recent = (
            ChatRecord.objects.visible_to_owner()
            .filter(session=session, status__in=_CONTEXT_STATUSES)
            .exclude(answer="")
            .order_by("-created_at", "-pk")
            .values_list("question", "answer")[:turns]
        )
        for past_question, past_answer in reversed(recent):
            messages.append({"role": "user", "content": past_question})
            messages.append({"role": "assistant", "content": past_answer})
    messages.append({"role": "user", "content": question})
    return messages


# --- History ------------------------------------------------------------------------------


def session_list(*, owner: User) -> QuerySet[ChatSession]:
    """The owner's live sessions with `record_count` and `last_record_id` annotated."""
    visible = ChatRecord.objects.visible_to_owner().filter(session=OuterRef("pk")).order_by()
    count = visible.values("session").annotate(count=Count("pk")).values("count")
    latest = visible.order_by("-created_at", "-pk").values("pk")[:1]
    return ChatSession.objects.filter(owner=owner, is_deleted=False).annotate(
        record_count=Coalesce(Subquery(count), 0), last_record_id=Subquery(latest)
    )


def session_get_detail(*, owner: User, session_id: int) -> ChatSession:
    """One live session of the owner, annotated like `session_list` and previewed."""
    session = session_list(owner=owner).filter(pk=session_id).first()
    if session is None:
        raise session_not_found()
    return session_attach_previews(sessions=[session])[0]


def session_get(*, owner: User, session_id: int) -> ChatSession:
    session = session_get_owned(owner_id=owner.pk, session_id=session_id)
    if session is None:
        raise session_not_found()
    return session


def session_not_found() -> ApplicationError:
    # The same answer for "deleted", "not yours" and "never existed".
    return ApplicationError("session_not_found", "No such chat session.", status=404)


def session_attach_previews(*, sessions: list[ChatSession]) -> list[ChatSession]:
    """Set `last_record` (a short preview dict, or None) on each session: one query."""
    ids = [s.last_record_id for s in sessions if s.last_record_id is not None]
    rows = ChatRecord.objects.filter(pk__in=ids).values(
        "id",
        "status",
        "created_at",
        question_start=Substr("question", 1, PREVIEW_CHARS),
        answer_start=Substr("answer", 1, PREVIEW_CHARS),
    )
    previews = {
        row["id"]: {
            "id": row["id"],
            "question": row["question_start"],
            "answer": row["answer_start"],
            "status": row["status"],
            "created_at": row["created_at"],
        }
        for row in rows
    }
    for session in sessions:
        session.last_record = previews.get(session.last_record_id)
    return sessions


def record_list(*, session: ChatSession) -> QuerySet[ChatRecord]:
    return ChatRecord.objects.visible_to_owner().filter(session=session, owner_id=session.owner_id)


def record_get(*, owner: User, record_id: int) -> ChatRecord:
    records = ChatRecord.objects.visible_to_owner()
    record = records.filter(pk=record_id, owner=owner, session__is_deleted=False).first()
    if record is None:
        raise ApplicationError("record_not_found", "No such chat record.", status=404)
    return record


def record_search(*, owner: User, query: str) -> QuerySet[ChatRecord]:
    """Records whose question or answer contains every word of `query` (case-insensitive).

    A scan of the owner's own records only; enough at per-user scale, and it matches
    Chinese, which has no spaces to build a word index on.
    """
    records = ChatRecord.objects.visible_to_owner().filter(owner=owner, session__is_deleted=False)
    for term in query.split()[:SEARCH_MAX_TERMS]:
        records = records.filter(Q(question__icontains=term) | Q(answer__icontains=term))
    return records.select_related("session")
