"""Chat sessions and the records (question + answer) inside them."""

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

    class Meta:
        indexes = [
            models.Index(fields=["session", "created_at"]),
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["rating", "created_at"]),
            models.Index(fields=["terminal", "created_at"]),
            models.Index(fields=["model_name", "created_at"]),
        ]
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
