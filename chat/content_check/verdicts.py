"""A verdict kept on its record for staff, and a blocked record hidden from its owner."""

from django.db import transaction

from chat.content_check.checkers import Side, Verdict
from chat.models import ChatRecord
from chat.moderation import record_hide


def subject_load(*, record_id: int) -> tuple[str, str]:
    """The record's question (as saved, as the model is sent it) and its owner's openid."""
    question, openid = (
        ChatRecord.objects.filter(pk=record_id).values_list("question", "owner__openid").get()
    )
    return question, openid or ""


def verdict_store(*, record_id: int, side: Side, verdict: Verdict, blocked: bool) -> None:
    """Keep `verdict` on the record. A block always does, and hides the record (logged as an
    automatic moderation action, `by` none); a `review` that lets the text through is kept
    only if the record holds no verdict yet: the first one is what staff look at."""
    fields = {
        "content_check_side": side,
        "content_check_suggest": verdict.suggest,
        "content_check_label": verdict.label,
        "content_check_trace_id": verdict.trace_id,
    }
    records = ChatRecord.objects.filter(pk=record_id)
    if not blocked:
        records.filter(content_check_suggest="").update(**fields)
        return
    with transaction.atomic():
        records.update(**fields)
        note = (
            f"Blocked by the content check ({side}): suggest {verdict.suggest}, "
            f"label {verdict.label}, trace id {verdict.trace_id or 'none'}"
        )
        record_hide(record=records.only("pk").get(), by=None, note=note)
