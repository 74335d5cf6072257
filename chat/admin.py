"""Staff moderation: browse, search and filter every user's chats."""

from django.contrib import admin
from django.http import HttpRequest

from chat.models import ChatRecord, ChatSession


class ChatRecordInline(admin.TabularInline):
    model = ChatRecord
    fields = ("created_at", "question", "answer", "status", "rating")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("created_at",)

    def has_add_permission(self, request: HttpRequest, obj: ChatSession | None = None) -> bool:
        return False  # records are made by the API only (they need an owner, a status...)


@admin.register(ChatSession)
class ChatSessionAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "owner", "updated_at", "is_deleted")
    list_filter = ("is_deleted",)
    search_fields = ("title", "owner__openid", "owner__nickname")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    date_hierarchy = "updated_at"
    inlines = (ChatRecordInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # sessions are made by the API, for their owner


@admin.register(ChatRecord)
class ChatRecordAdmin(admin.ModelAdmin):
    list_display = (
        "id", "short_question", "owner", "status", "rating", "terminal", "model_name",
        "first_token_ms", "created_at",
    )  # fmt: skip
    list_filter = ("status", "rating", "terminal", "model_name", "created_at")
    search_fields = ("question", "answer", "owner__openid", "owner__nickname", "client_id")
    list_select_related = ("owner",)
    raw_id_fields = ("owner", "session")
    date_hierarchy = "created_at"
    readonly_fields = (
        "session", "owner", "question", "answer", "model_name", "status", "error_code",
        "client_id", "terminal", "created_at", "first_token_ms", "finished_at",
        "prompt_tokens", "completion_tokens",
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # records are made by the API only (they need an owner, a status...)

    @admin.display(description="question")
    def short_question(self, record: ChatRecord) -> str:
        return record.question if len(record.question) <= 60 else record.question[:60] + "…"
