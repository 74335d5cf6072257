"""Chat sessions, the records (question + answer) inside them, and what staff did to them."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ChatSession(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions"
    )
    title = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    is_deleted = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["owner", "is_deleted", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or f"session {self.pk}"


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
    class Status(models.TextChoices):
        PENDING = "pending"
        STREAMING = "streaming"
        DONE = "done"
        STOPPED = "stopped"
        INTERRUPTED = "interrupted"
        ERROR = "error"

    class Rating(models.TextChoices):
        NONE = "none"
        USEFUL = "useful"
        NOT_USEFUL = "not_useful"

    class Terminal(models.TextChoices):
        MINIPROGRAM = "miniprogram"
        WEBVIEW = "webview"
        API = "api"

    class Source(models.TextChoices):
        STREAM = "stream", "Server stream"
        HANDOFF = "handoff", "Web-view handoff"

    class Moderation(models.TextChoices):
        UNREVIEWED = "unreviewed"
        FLAGGED = "flagged"  # waits for a review
        REVIEWED = "reviewed"

    FINISHED_STATUSES = (Status.DONE, Status.STOPPED, Status.INTERRUPTED, Status.ERROR)

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="records")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_records"
    )
    question = models.TextField()
    answer = models.TextField(blank=True)
    model_name = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error_code = models.CharField(max_length=64, blank=True)
    rating = models.CharField(max_length=16, choices=Rating.choices, default=Rating.NONE)
    rating_reason = models.CharField(max_length=200, blank=True)
    # The client's own message id: lets a client retry or bulk-save without duplicates.
    client_id = models.CharField(max_length=64, blank=True)
    terminal = models.CharField(max_length=16, choices=Terminal.choices, default=Terminal.API)
    question_type = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Refreshed (with the partial answer as a checkpoint) while a server process generates;
    # a stale one means that process died and the reaper may close the record.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # What the model produced through the server, or what a web-view page submitted
    # (POST /api/chat/records/bulk): staff must be able to tell them apart.
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.STREAM)
    # Staff moderation (chat/moderation.py changes these, with a ModerationEvent each).
    moderation = models.CharField(
        max_length=16, choices=Moderation.choices, default=Moderation.UNREVIEWED
    )
    is_hidden = models.BooleanField("hidden from its owner", default=False)

    objects = ChatRecordQuerySet.as_manager()

    class Meta:
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
        permissions = [("moderate_chatrecord", "Can review, flag, hide and unhide records")]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "client_id"],
                condition=~Q(client_id=""),
                name="chatrecord_unique_client_id_per_owner",
            )
        ]

    def __str__(self) -> str:
        return f"record {self.pk}: {self.question[:40]}"

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
        REVIEWED = "reviewed", "Marked reviewed"
        FLAGGED = "flagged"
        HIDDEN = "hidden"
        UNHIDDEN = "unhidden"

    record = models.ForeignKey(
        ChatRecord, on_delete=models.CASCADE, related_name="moderation_events"
    )
    action = models.CharField(max_length=16, choices=Action.choices)
    note = models.TextField(blank=True)
    # Who did it; None once that account is deleted (or for an automatic action).
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["record", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()} record {self.record_id}"
