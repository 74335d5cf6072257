"""Reads: what the stream endpoint needs to know before it asks the model."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from chat.models import ChatRecord, ChatSession

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
