from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group, Permission
from django.db import models
from django.http import HttpRequest
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import AccessToken, User, WebviewTicket

# Django names a model's default permissions in English ("Can view chat record") when it
# creates them, and keeps that name in the database; the admin shows them in its language.
_DEFAULT_PERMISSIONS = {
    "add": _("Can add %(model)s"),
    "change": _("Can change %(model)s"),
    "delete": _("Can delete %(model)s"),
    "view": _("Can view %(model)s"),
}


def permission_label(permission: Permission) -> str:
    """A permission's choice label, app | model | permission, in the admin's language. A
    custom permission's name is the msgid its model marked (chat's moderate_chatrecord)."""
    model = permission.content_type.model_class()
    action, _sep, model_name = permission.codename.partition("_")
    if (
        model is not None
        and action in _DEFAULT_PERMISSIONS
        and model_name == model._meta.model_name
    ):
        name = _DEFAULT_PERMISSIONS[action] % {"model": model._meta.verbose_name}
    else:
        name = gettext(permission.name)
    return f"{permission.content_type} | {name}"


class PermissionsInLanguage:
    """Permission pickers whose choices read in the admin's language (permission_label)."""

    def formfield_for_manytomany(
        self, db_field: models.ManyToManyField, request: HttpRequest, **kwargs: object
    ) -> forms.Field | None:
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if isinstance(field, forms.ModelMultipleChoiceField) and field.queryset.model is Permission:
            field.label_from_instance = permission_label
        return field


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(PermissionsInLanguage, DjangoGroupAdmin):
    pass


@admin.register(User)
class UserAdmin(PermissionsInLanguage, DjangoUserAdmin):
    list_display = ("username", "openid", "nickname", "is_staff", "date_joined", "last_seen_at")
    search_fields = ("username", "openid", "unionid", "nickname")
    list_filter = ("is_staff", "is_active")
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        (_("WeChat"), {"fields": ("openid", "unionid", "nickname", "avatar_url", "last_seen_at")}),
        (
            _("Limits"),
            {
                "description": _(
                    "Raise or lift this user's limits; empty fields follow the server's "
                    "settings, 0 means no limit. Applies from the next question."
                ),
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
