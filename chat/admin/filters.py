"""The records changelist's own filters: moderation state (and the review queue), user and
time to first token. The plain fields (status, rating, source...) use Django's."""

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from chat.models import REVIEW_QUEUE, ChatRecord

QUEUE = "queue"


class ModerationFilter(admin.SimpleListFilter):
    title = _("moderation")
    parameter_name = "moderation"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [
            (QUEUE, _("Review queue: not useful or flagged, not reviewed")),
            *ChatRecord.Moderation.choices,
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        value = self.value()
        if value == QUEUE:
            return queryset.filter(REVIEW_QUEUE)
        if value in ChatRecord.Moderation.values:
            return queryset.filter(moderation=value)
        return None


class OwnerFilter(admin.SimpleListFilter):
    """One user's records: reached from the user column, not picked from a list of
    thousands; shown (to clear it) while it is on."""

    title = _("user")
    parameter_name = "owner"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        value = self.value()
        if value is None:
            return []
        if not value.isascii() or not value.isdigit():
            raise IncorrectLookupParameters(f"owner={value!r} is not a user id")
        user = User.objects.filter(pk=value).first()
        label = str(user) if user else gettext("user %(id)s (none)") % {"id": value}
        return [(value, label)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        value = self.value()
        return None if value is None else queryset.filter(owner_id=value)


# (value, label, condition) of each bucket of time to first token.
_FIRST_TOKEN_BUCKETS = (
    ("fast", _("under 0.5 s"), Q(first_token_ms__lt=500)),
    ("ok", _("0.5 – 1 s"), Q(first_token_ms__gte=500, first_token_ms__lt=1000)),
    ("slow", _("1 – 3 s"), Q(first_token_ms__gte=1000, first_token_ms__lt=3000)),
    ("very_slow", _("3 s or more"), Q(first_token_ms__gte=3000)),
    ("none", _("no token"), Q(first_token_ms__isnull=True)),
)


class FirstTokenFilter(admin.SimpleListFilter):
    title = _("time to first token")
    parameter_name = "first_token"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [(value, label) for value, label, _condition in _FIRST_TOKEN_BUCKETS]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        for value, _label, condition in _FIRST_TOKEN_BUCKETS:
            if self.value() == value:
                return queryset.filter(condition)
        return None
