"""History: the caller's sessions and records, and search over them.

Reads first (selectors: querysets the API pages through), then the few small writes the
history API makes (create, rename, soft-delete a session; rate a record). Everything takes
the owner, so another user's ids behave exactly like ids that do not exist, and records of
a deleted session are gone from every read, and so are records staff hid
(`ChatRecord.objects.visible_to_owner()`).
"""

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Substr

from accounts.models import User
from chat.models import ChatRecord, ChatSession
from chat.selectors import session_get_owned
from chatproject.errors import ApplicationError

PREVIEW_CHARS = 100
SEARCH_MAX_TERMS = 5
TITLE_MAX_CHARS = 120
# Rated answers are ones the user saw end: `error` turns are failures already recorded
# with their error_code, and rating them would mix outages into answer quality.
RATEABLE_STATUSES = (
    ChatRecord.Status.DONE,
    ChatRecord.Status.STOPPED,
    ChatRecord.Status.INTERRUPTED,
)


# --- Reads ----------------------------------------------------------------------------------


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
        raise _session_not_found()
    return session_attach_previews(sessions=[session])[0]


def session_get(*, owner: User, session_id: int) -> ChatSession:
    session = session_get_owned(owner_id=owner.pk, session_id=session_id)
    if session is None:
        raise _session_not_found()
    return session


def _session_not_found() -> ApplicationError:
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


# --- Writes ---------------------------------------------------------------------------------


def session_create(*, owner: User, title: str) -> ChatSession:
    return ChatSession.objects.create(owner=owner, title=title.strip()[:TITLE_MAX_CHARS])


def session_rename(*, owner: User, session_id: int, title: str) -> None:
    # A rename is not chat activity: `updated_at` (the list order) stays put.
    renamed = ChatSession.objects.filter(pk=session_id, owner=owner, is_deleted=False).update(
        title=title.strip()[:TITLE_MAX_CHARS]
    )
    if not renamed:
        raise _session_not_found()


def session_soft_delete(*, owner: User, session_id: int) -> None:
    """Hide the session and its records from the user; staff still see them in the admin."""
    deleted = ChatSession.objects.filter(pk=session_id, owner=owner, is_deleted=False).update(
        is_deleted=True
    )
    if not deleted:
        raise _session_not_found()


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
