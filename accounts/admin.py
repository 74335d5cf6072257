from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import models
from django.http import HttpRequest

from accounts.models import AccessToken, User, WebviewTicket


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "openid", "nickname", "is_staff", "date_joined", "last_seen_at")
    search_fields = ("username", "openid", "unionid", "nickname")
    list_filter = ("is_staff", "is_active")
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        ("WeChat", {"fields": ("openid", "unionid", "nickname", "avatar_url", "last_seen_at")}),
        (
            "Limits",
            {
                "description": "Raise or lift this user's limits; empty fields follow the "
                "server's settings, 0 means no limit. Applies from the next question.",
                "fields": (
                    "limit_concurrent_streams",
                    "limit_questions_per_minute",
                    "limit_questions_per_day",
                    "limit_answer_tokens_per_day",
                ),
            },
        ),
    )
    readonly_fields = ("last_seen_at",)
    # WeChat serves avatars over https; an address typed without a scheme gets https (the
    # default Django 6 adopts; Django 5 warns until the scheme is chosen).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    list_display = ("key_id", "user", "created_at", "expires_at", "revoked_at")
    list_select_related = ("user",)
    search_fields = ("user__openid", "user__username")
    raw_id_fields = ("user",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a row without its signed string is no token: tokens come from a login


@admin.register(WebviewTicket)
class WebviewTicketAdmin(admin.ModelAdmin):
    """For tracing a web-view login; tickets are only ever made by the API."""

    list_display = ("id", "user", "created_at", "expires_at", "used_at")
    list_select_related = ("user",)
    search_fields = ("user__openid", "user__username")
    raw_id_fields = ("user",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
