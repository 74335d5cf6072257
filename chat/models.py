"""Chat sessions, the records (question + answer) inside them, and what staff did to them."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class ChatSession(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="chat_sessions",
        verbose_name=_("user"),
    )
    title = models.CharField(_("title"), max_length=120, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)
    is_deleted = models.BooleanField(_("deleted by its owner"), default=False)

    class Meta:
        verbose_name = _("chat session")
        verbose_name_plural = _("chat sessions")
        indexes = [models.Index(fields=["owner", "is_deleted", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or gettext("session %(id)s") % {"id": self.pk}


# The review queue: answers rated not useful that nobody reviewed yet, and flagged ones.
# Here, in plain values, because the partial index that serves it sits in ChatRecord.Meta.
REVIEW_QUEUE = Q(rating="not_useful", moderation="unreviewed") | Q(moderation="flagged")


class ChatRecordQuerySet(models.QuerySet):
    def visible_to_owner(self) -> "ChatRecordQuerySet":
        """What a record's owner may see of it: the one place that decides.

        Every owner-facing read (history, search, resume, the context sent back to the
        model) starts here; staff read the plain manager and see everything. Records of a
        deleted session are left out by the session reads themselves.
        """
        return self.filter(is_hidden=False)


class ChatRecord(models.Model):
    # Values are the API's contract; labels are what staff read in the admin.
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        STREAMING = "streaming", _("Streaming")
        DONE = "done", _("Done")
        STOPPED = "stopped", _("Stopped")
        INTERRUPTED = "interrupted", _("Interrupted")
        ERROR = "error", _("Error")

    class Rating(models.TextChoices):
        NONE = "none", _("Not rated")
        USEFUL = "useful", _("Useful")
        NOT_USEFUL = "not_useful", _("Not useful")

    class Terminal(models.TextChoices):
        MINIPROGRAM = "miniprogram", _("Mini-program")
        WEBVIEW = "webview", _("Web-view page")
        API = "api", _("API")

    class Source(models.TextChoices):
        STREAM = "stream", _("Server stream")
        HANDOFF = "handoff", _("Web-view handoff")

    class Moderation(models.TextChoices):
        UNREVIEWED = "unreviewed", _("Unreviewed")
        FLAGGED = "flagged", _("Flagged")  # waits for a review
        REVIEWED = "reviewed", _("Reviewed")

    class CheckedSide(models.TextChoices):
        QUESTION = "question", _("Question")
        ANSWER = "answer", _("Answer")

    class ContentSuggest(models.TextChoices):
        REVIEW = "review", _("Review (unsure)")
        RISKY = "risky", _("Risky")

    FINISHED_STATUSES = (Status.DONE, Status.STOPPED, Status.INTERRUPTED, Status.ERROR)

    session = models.ForeignKey(
        ChatSession, on_delete=models.CASCADE, related_name="records", verbose_name=_("session")
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="chat_records",
        verbose_name=_("user"),
    )
    question = models.TextField(_("question"))
    answer = models.TextField(_("answer"), blank=True)
    model_name = models.CharField(_("model"), max_length=100, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    error_code = models.CharField(_("error code"), max_length=64, blank=True)
    rating = models.CharField(
        _("rating"), max_length=16, choices=Rating.choices, default=Rating.NONE
    )
    rating_reason = models.CharField(_("rating reason"), max_length=200, blank=True)
    # The client's own message id: lets a client retry or bulk-save without duplicates.
    client_id = models.CharField(_("client message id"), max_length=64, blank=True)
    terminal = models.CharField(
        _("terminal"), max_length=16, choices=Terminal.choices, default=Terminal.API
    )
    question_type = models.CharField(_("question type"), max_length=32, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    first_token_ms = models.PositiveIntegerField(_("first token (ms)"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # Refreshed (with the partial answer as a checkpoint) while a server process generates;
    # a stale one means that process died and the reaper may close the record.
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(_("prompt tokens"), null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(_("answer tokens"), null=True, blank=True)
    # What the model produced through the server, or what a web-view page submitted
    # (POST /api/chat/records/bulk): staff must be able to tell them apart.
    source = models.CharField(
        _("source"), max_length=16, choices=Source.choices, default=Source.STREAM
    )
    # Staff moderation (chat/moderation.py changes these, with a ModerationEvent each).
    moderation = models.CharField(
        _("moderation"), max_length=16, choices=Moderation.choices, default=Moderation.UNREVIEWED
    )
    is_hidden = models.BooleanField(_("hidden from its owner"), default=False)
    # Content security (chat/content_check/): the verdict that blocked the record, else the
    # first `review` one; empty when every check passed or none ran. Defaults in the
    # database: the stream's own INSERT (chat/turn_store.py) leaves them out.
    content_check_side = models.CharField(
        _("checked side"),
        max_length=8,
        choices=CheckedSide.choices,
        blank=True,
        default="",
        db_default="",
    )
    content_check_suggest = models.CharField(
        _("content check"),
        max_length=8,
        choices=ContentSuggest.choices,
        blank=True,
        default="",
        db_default="",
    )
    content_check_label = models.PositiveIntegerField(_("content label"), null=True, blank=True)
    content_check_trace_id = models.CharField(
        _("content check trace id"), max_length=64, blank=True, default="", db_default=""
    )

    objects = ChatRecordQuerySet.as_manager()

    class Meta:
        verbose_name = _("chat record")
        verbose_name_plural = _("chat records")
        indexes = [
            models.Index(fields=["session", "created_at"]),
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["rating", "created_at"]),
            models.Index(fields=["terminal", "created_at"]),
            models.Index(fields=["model_name", "created_at"]),
            # The admin's default order, and every figure of the dashboard's last 30 days
            # read from the index alone: the rows, answers and all, stay on disk.
            models.Index(
                fields=[
                    "created_at",
                    "status",
                    "rating",
                    "owner",
                    "model_name",
                    "first_token_ms",
                    "error_code",
                ],
                name="chatrecord_dashboard",
            ),
            # The queue, oldest first, and its size on the admin index: a small index.
            models.Index(
                fields=["created_at"], condition=REVIEW_QUEUE, name="chatrecord_review_queue"
            ),
        ]
        # Django stores the name in English; the admin shows it translated (accounts/admin.py).
        permissions = [("moderate_chatrecord", _("Can review, flag, hide and unhide records"))]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "client_id"],
                condition=~Q(client_id=""),
                name="chatrecord_unique_client_id_per_owner",
            )
        ]

    def __str__(self) -> str:
        return gettext("Record %(id)s: %(question)s") % {
            "id": self.pk,
            "question": self.question[:40],
        }

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED_STATUSES

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens


class ModerationEvent(models.Model):
    """One thing staff did to a record, with their note: the record's moderation log."""

    class Action(models.TextChoices):
        REVIEWED = "reviewed", _("Marked reviewed")
        FLAGGED = "flagged", _("Flagged")
        HIDDEN = "hidden", _("Hidden")
        UNHIDDEN = "unhidden", _("Unhidden")

    record = models.ForeignKey(
        ChatRecord,
        on_delete=models.CASCADE,
        related_name="moderation_events",
        verbose_name=_("record"),
    )
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    note = models.TextField(_("note"), blank=True)
    # Who did it; None once that account is deleted (or for an automatic action).
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("moderation event")
        verbose_name_plural = _("moderation events")
        indexes = [models.Index(fields=["record", "created_at"])]

    def __str__(self) -> str:
        return gettext("%(action)s: record %(id)s") % {
            "action": self.get_action_display(),
            "id": self.record_id,
        }
