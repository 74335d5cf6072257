"""The web-view handoff: save the chat list an H5 page hands to its mini-program.

A page inside <web-view> cannot call the API as it closes, so it posts its messages with
`wx.miniProgram.postMessage`. WeChat delivers them only on back, share or destroy, as an
array of every message posted so far, and the mini-program bulk-saves that array. The same
message therefore arrives again and again, and may already be saved by the stream endpoint:
each item is an upsert keyed by a record id or by the client's message id, on its own, so
one bad item costs only itself.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from chat.models import ChatRecord, ChatSession
from chat.selectors import session_get_owned
from chat.serializers import HandoffItemSerializer
from chat.services import RATEABLE_STATUSES
from chatproject.errors import ApplicationError

MAX_ITEMS = 200
_TITLE_LENGTH = 30

Rating = ChatRecord.Rating
Status = ChatRecord.Status


# --- One item ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HandoffItem:
    question: str
    answer: str | None  # None: not sent
    rating: str | None  # None: not sent
    rating_reason: str | None
    created_at: datetime | None
    model_name: str
    terminal: str
    question_type: str
    window: str
    record_id: int | None  # names a server record, which must be the caller's
    client_id: str  # the client's message id, "" when none
    maybe_record_id: int | None  # a numeric legacy `id`: perhaps a server record id
    session_id: int | None


class ItemError(Exception):
    def __init__(self, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.body = {"code": code, "message": message, **extra}


def handoff_item_parse(raw: object) -> HandoffItem:
    serializer = HandoffItemSerializer(data=raw)
    if not serializer.is_valid():
        raise ItemError("invalid_input", "Some fields are invalid.", fields=serializer.errors)
    return HandoffItem(**serializer.validated_data)


# --- The batch: matching and saving ------------------------------------------------------


@dataclass
class ItemResult:
    index: int
    result: str  # created / updated / unchanged / error
    record_id: int | None = None
    session_id: int | None = None
    client_id: str | None = None
    error: dict | None = None


@dataclass
class _Batch:
    owner: User
    session: ChatSession | None  # the request's `session_id`, if any
    by_pk: dict[int, ChatRecord] = field(default_factory=dict)
    by_client_id: dict[str, ChatRecord] = field(default_factory=dict)
    windows: dict[str, ChatSession] = field(default_factory=dict)
    owned_sessions: dict[int, ChatSession | None] = field(default_factory=dict)

    def remember(self, record: ChatRecord) -> None:
        self.by_pk[record.pk] = record
        if record.client_id:
            self.by_client_id[record.client_id] = record


def handoff_save(*, owner: User, raw_items: list, session_id: int | None) -> list[ItemResult]:
    """Upsert every item on its own, in order; the result of each says what happened."""
    batch = _Batch(owner=owner, session=_request_session(owner=owner, session_id=session_id))
    parsed: list[HandoffItem | ItemError] = []
    for raw in raw_items:
        try:
            parsed.append(handoff_item_parse(raw))
        except ItemError as error:
            parsed.append(error)
    items = [item for item in parsed if isinstance(item, HandoffItem)]
    _load_known_records(batch, items)
    _load_window_sessions(batch, items)
    results = []
    for index, item in enumerate(parsed):
        try:
            if isinstance(item, ItemError):
                raise item
            result, record = _item_save(batch, item)
        except ItemError as error:
            results.append(ItemResult(index=index, result="error", error=error.body))
            continue
        results.append(
            ItemResult(
                index=index,
                result=result,
                record_id=record.pk,
                session_id=record.session_id,
                client_id=record.client_id or None,
            )
        )
    return results


def _request_session(*, owner: User, session_id: int | None) -> ChatSession | None:
    if session_id is None:
        return None
    session = session_get_owned(owner_id=owner.pk, session_id=session_id)
    if session is None:
        raise ApplicationError("session_not_found", "No such chat session.", status=404)
    return session


def _load_known_records(batch: _Batch, items: list[HandoffItem]) -> None:
    """One query for every record the batch may name, the caller's only."""
    ids = {i.record_id or i.maybe_record_id for i in items} - {None}
    keys = {i.client_id for i in items} - {""}
    if not ids and not keys:
        return
    known = ChatRecord.objects.filter(owner=batch.owner).filter(
        Q(pk__in=ids) | Q(client_id__in=keys)
    )
    for record in known.select_related("session"):
        batch.remember(record)


def _load_window_sessions(batch: _Batch, items: list[HandoffItem]) -> None:
    """A window's new messages join the session its already-saved messages are in."""
    for item in items:
        try:
            record = _match(batch, item)
        except ItemError:
            continue
        if record is None:
            continue
        current = batch.windows.get(item.window)
        if current is None or record.session.updated_at > current.updated_at:
            batch.windows[item.window] = record.session


def _match(batch: _Batch, item: HandoffItem) -> ChatRecord | None:
    """The saved record this item is a copy of, if any."""
    if item.record_id is not None:
        record = batch.by_pk.get(item.record_id)
        if record is None:
            # Also for another user's record: an id is never an oracle.
            raise ItemError("record_not_found", "No such chat record.")
    elif item.client_id in batch.by_client_id:
        record = batch.by_client_id[item.client_id]
    else:
        # A numeric legacy `id` is a server record id only if the question agrees, so a
        # page that numbers its messages 1, 2, 3 does not land on records 1, 2, 3.
        record = batch.by_pk.get(item.maybe_record_id)
        if record is None or record.question != item.question:
            return None
    if record.session.is_deleted:
        raise ItemError("record_deleted", "This message was in a deleted session.")
    return record


def _item_save(batch: _Batch, item: HandoffItem) -> tuple[str, ChatRecord]:
    record = _match(batch, item)
    if record is not None:
        return _item_update(item, record), record
    return _item_create(batch, item)


def _item_create(batch: _Batch, item: HandoffItem) -> tuple[str, ChatRecord]:
    if not item.client_id:
        raise ItemError("id_required", "Send `id` or `client_id`, or a resend would duplicate it.")
    if not item.question:
        raise ItemError("question_required", "`question` is required to save a new message.")
    session = _session_for_new(batch, item)
    created_at = item.created_at or timezone.now()
    answer = item.answer or ""
    try:
        with transaction.atomic():
            if session.pk is None:
                session.created_at = session.updated_at = created_at
                session.save()
            record = ChatRecord.objects.create(
                session=session,
                owner=batch.owner,
                question=item.question,
                answer=answer,
                # The page shows a finished turn; with no text it was cut off.
                status=Status.DONE if answer else Status.INTERRUPTED,
                rating=item.rating or Rating.NONE,
                rating_reason=(item.rating_reason or "") if _sets_rating(item) else "",
                model_name=item.model_name,
                client_id=item.client_id,
                terminal=item.terminal,
                question_type=item.question_type,
                created_at=created_at,
                source=ChatRecord.Source.HANDOFF,
            )
            ChatSession.objects.filter(pk=session.pk, updated_at__lt=created_at).update(
                updated_at=created_at
            )
    except IntegrityError:
        # A stream or a concurrent handoff saved this client_id since we looked.
        record = _record_by_client_id(batch, item.client_id)
        return _item_update(item, record), record
    record.session = session
    batch.remember(record)
    batch.windows.setdefault(item.window, session)
    return "created", record


def _record_by_client_id(batch: _Batch, client_id: str) -> ChatRecord:
    record = (
        ChatRecord.objects.select_related("session")
        .filter(owner=batch.owner, client_id=client_id)
        .first()
    )
    if record is None:
        raise ItemError("conflict", "The message changed while saving; send it again.")
    batch.remember(record)
    return record


def _session_for_new(batch: _Batch, item: HandoffItem) -> ChatSession:
    """An item's own `session_id`, else the request's, else its window's (maybe new) one."""
    if item.session_id is not None:
        if item.session_id not in batch.owned_sessions:
            batch.owned_sessions[item.session_id] = session_get_owned(
                owner_id=batch.owner.pk, session_id=item.session_id
            )
        session = batch.owned_sessions[item.session_id]
        if session is None:
            raise ItemError("session_not_found", "No such chat session.")
        return session
    if batch.session is not None:
        return batch.session
    # Unsaved until its first record is: a failed item leaves no empty session behind.
    existing = batch.windows.get(item.window)
    return existing or ChatSession(owner=batch.owner, title=item.question[:_TITLE_LENGTH])


def _answer_may_grow(record: ChatRecord) -> bool:
    # A streamed answer (finished_at set when the stream saved it) is exactly what the
    # model produced and is never replaced. A handoff-saved one (no finished_at) may grow:
    # the page may have posted its list while an answer was still arriving.
    return record.finished_at is None and record.status in (Status.DONE, Status.INTERRUPTED)


def _item_update(item: HandoffItem, record: ChatRecord) -> str:
    changes: dict[str, Any] = {}
    if (
        item.answer is not None
        and len(item.answer) > len(record.answer)
        and _answer_may_grow(record)
    ):
        changes["answer"] = item.answer
        changes["status"] = Status.DONE
    changes |= _rating_changes(item, record, status=changes.get("status", record.status))
    if not changes:
        return "unchanged"
    # Only if nobody changed the record since it was read; otherwise ask for a resend.
    updated = ChatRecord.objects.filter(
        pk=record.pk, status=record.status, answer=record.answer
    ).update(**changes)
    if not updated:
        raise ItemError("conflict", "The message changed while saving; send it again.")
    for name, value in changes.items():
        setattr(record, name, value)
    return "updated"


def _sets_rating(item: HandoffItem) -> bool:
    # A handoff sets a rating but never clears one: `useful: 0` is every page's default.
    return item.rating in (Rating.USEFUL, Rating.NOT_USEFUL)


def _rating_changes(item: HandoffItem, record: ChatRecord, *, status: str) -> dict[str, str]:
    if not _sets_rating(item):
        return {}
    reason = record.rating_reason if item.rating_reason is None else item.rating_reason
    if item.rating != record.rating:
        reason = item.rating_reason or ""
    if (item.rating, reason) == (record.rating, record.rating_reason):
        return {}
    if status not in RATEABLE_STATUSES:
        raise ItemError(
            "record_not_rateable", "Only answers that are done, stopped or interrupted."
        )
    return {"rating": item.rating, "rating_reason": reason}
