"""The sessions' admin: read-only, each with its records inline."""

from django.contrib import admin
from django.http import HttpRequest

from chat.models import ChatRecord, ChatSession


class ChatRecordInline(admin.TabularInline):
    model = ChatRecord
    fields = ("created_at", "question", "answer", "status", "rating", "is_hidden")
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
