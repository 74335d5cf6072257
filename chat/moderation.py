"""Staff moderation: mark reviewed, flag, hide and unhide records, each logged with a note.

Hiding is the one way a record leaves its owner's sight: `ChatRecord.objects
.visible_to_owner()` decides what owners see, these functions decide what is hidden. A
hidden record stays for staff, in the admin and in exports. Automatic checks hide through
`record_hide` too (with `by=None`), so their actions land in the same log.
"""

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import User
from chat.models import REVIEW_QUEUE, ChatRecord, ModerationEvent

Action = ModerationEvent.Action
Moderation = ChatRecord.Moderation

NOTE_MAX_CHARS = 1000
MODERATOR_GROUP = "moderator"
# View and moderate; no change permission, so answers and users stay as they are.
MODERATOR_PERMISSIONS = (
    "chat.view_chatrecord",
    "chat.moderate_chatrecord",
    "chat.view_chatsession",
    "accounts.view_user",
)
_UPDATE_BATCH = 1000

# What each action changes, and on which records it does anything at all (hiding a hidden
# record is not an event). Hiding and unhiding are decisions made on a look, so they also
# take the record out of the review queue.
_EFFECTS: dict[str, tuple[Q, dict]] = {
    Action.REVIEWED: (Q(), {"moderation": Moderation.REVIEWED}),
    Action.FLAGGED: (Q(), {"moderation": Moderation.FLAGGED}),
    Action.HIDDEN: (Q(is_hidden=False), {"is_hidden": True, "moderation": Moderation.REVIEWED}),
    Action.UNHIDDEN: (Q(is_hidden=True), {"is_hidden": False, "moderation": Moderation.REVIEWED}),
}


def records_moderate(
    *, records: QuerySet[ChatRecord], action: str, by: User | None, note: str
) -> list[int]:
    """Apply `action` to each of `records` it changes and log one event per record, in one
    transaction; returns the ids acted on (none: nothing to do, nothing logged)."""
    condition, changes = _EFFECTS[action]
    targets = ChatRecord.objects.filter(pk__in=records.values("pk")).filter(condition)
    note = note.strip()[:NOTE_MAX_CHARS]
    now = timezone.now()
    with transaction.atomic():
        # Locked first: a concurrent hide of the same record logs once, not twice.
        ids = list(targets.select_for_update().order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), _UPDATE_BATCH):
            ChatRecord.objects.filter(pk__in=ids[start : start + _UPDATE_BATCH]).update(**changes)
        ModerationEvent.objects.bulk_create(
            [
                ModerationEvent(record_id=pk, action=action, note=note, by=by, created_at=now)
                for pk in ids
            ],
            batch_size=_UPDATE_BATCH,
        )
    return ids


def _record_moderate(record: ChatRecord, action: str, by: User | None, note: str) -> bool:
    done = records_moderate(
        records=ChatRecord.objects.filter(pk=record.pk), action=action, by=by, note=note
    )
    if done:
        record.refresh_from_db(fields=["moderation", "is_hidden"])
    return bool(done)


def record_mark_reviewed(*, record: ChatRecord, by: User | None, note: str = "") -> bool:
    return _record_moderate(record, Action.REVIEWED, by, note)


def record_flag(*, record: ChatRecord, by: User | None, note: str) -> bool:
    """Flag for a (new) review: the record joins the review queue."""
    return _record_moderate(record, Action.FLAGGED, by, note)


def record_hide(*, record: ChatRecord, by: User | None, note: str) -> bool:
    """Hide from the owner (history, search, resume, model context); False if it was."""
    return _record_moderate(record, Action.HIDDEN, by, note)


def record_unhide(*, record: ChatRecord, by: User | None, note: str) -> bool:
    return _record_moderate(record, Action.UNHIDDEN, by, note)


# --- Reads ----------------------------------------------------------------------------------


def review_queue() -> QuerySet[ChatRecord]:
    """Not-useful answers nobody reviewed yet, and flagged ones, oldest first."""
    return ChatRecord.objects.filter(REVIEW_QUEUE).order_by("created_at", "pk")


def moderation_log(*, record: ChatRecord) -> QuerySet[ModerationEvent]:
    return record.moderation_events.select_related("by").order_by("created_at", "pk")


# --- The moderator group --------------------------------------------------------------------


def moderator_group_sync() -> Group:
    """The "moderator" group with exactly MODERATOR_PERMISSIONS (run after every migrate)."""
    group, _ = Group.objects.get_or_create(name=MODERATOR_GROUP)
    wanted = Q()
    for name in MODERATOR_PERMISSIONS:
        app_label, codename = name.split(".")
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    # Those that exist: a migrate back to before a permission existed still runs this.
    group.permissions.set(Permission.objects.filter(wanted))
    return group
