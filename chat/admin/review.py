"""A record's review page: the conversation around it, and the buttons that apply."""

from django.utils.translation import gettext

from chat.models import ChatRecord, ModerationEvent

Action = ModerationEvent.Action
# Records of the session shown on each side of the one being reviewed.
CONVERSATION_SIDE = 50


def conversation(record: ChatRecord) -> list[ChatRecord]:
    """The session's records around this one, in order."""
    fields = ("id", "question", "answer", "status", "rating", "is_hidden", "created_at")
    session = ChatRecord.objects.filter(session_id=record.session_id).only(*fields)
    earlier = session.filter(created_at__lt=record.created_at) | session.filter(
        created_at=record.created_at, pk__lt=record.pk
    )
    later = session.filter(created_at__gt=record.created_at) | session.filter(
        created_at=record.created_at, pk__gt=record.pk
    )
    before = list(earlier.order_by("-created_at", "-pk")[:CONVERSATION_SIDE])[::-1]
    after = list(later.order_by("created_at", "pk")[:CONVERSATION_SIDE])
    return [*before, record, *after]


def actions_for(record: ChatRecord) -> list[tuple[str, str]]:
    """The moderation buttons that would change something on this record."""
    actions = [
        (Action.REVIEWED, gettext("Mark reviewed")),
        (Action.FLAGGED, gettext("Flag for review")),
    ]
    if record.is_hidden:
        actions.append((Action.UNHIDDEN, gettext("Unhide")))
    else:
        actions.append((Action.HIDDEN, gettext("Hide from owner")))
    return actions
