"""The records' admin: every user's chats, the review queue, moderation actions with
their log, and CSV export. Records are made by the API only; staff read and moderate them."""

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.db.models.functions import Substr
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.functional import Promise
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from chat.admin.filters import QUEUE, FirstTokenFilter, ModerationFilter, OwnerFilter
from chat.admin.forms import ModerationForm, done_selection, records_phrase
from chat.admin.review import actions_for, conversation
from chat.charts import seconds
from chat.export import records_csv_response
from chat.markdown import markdown_to_plain_text, markdown_to_safe_html
from chat.models import ChatRecord, ModerationEvent
from chat.moderation import moderation_log, records_moderate

Action = ModerationEvent.Action
PREVIEW_CHARS = 80
# Answers are Markdown, previewed as plain words: read twice the preview, as the marks go.
ANSWER_START_CHARS = 2 * PREVIEW_CHARS
# Records listed on the page that asks for a moderation note.
SELECTION_SHOWN = 20
WIDE_PAGE = {"is_nav_sidebar_enabled": False}


class RecordChangeList(ChangeList):
    """Rows carry the start of each answer, not the whole answer: a page of 100 rows stays
    small whatever the answers' length. (Questions are short, and each row's label.)"""

    def get_queryset(self, request: HttpRequest, exclude_parameters=None) -> QuerySet:
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.annotate(answer_start=Substr("answer", 1, ANSWER_START_CHARS)).defer(
            "answer"
        )


# msgSecCheck v2's labels (chat/content_check/checkers.py `Verdict`).
_CONTENT_LABELS = {
    100: _("normal"),
    10001: _("advertising"),
    20001: _("politics"),
    20002: _("pornography"),
    20003: _("abuse"),
    20006: _("crime"),
    20008: _("fraud"),
    20012: _("vulgarity"),
    20013: _("copyright"),
    21000: _("other"),
}


def _preview(text: str, *, more: bool = False) -> str:
    """The start of `text`, with "…" when it is cut here or `more` follows it."""
    if len(text) <= PREVIEW_CHARS and not more:
        return text
    return text[:PREVIEW_CHARS] + "…"


def _answer_preview(answer_start: str) -> str:
    more = len(answer_start) >= ANSWER_START_CHARS
    return _preview(markdown_to_plain_text(answer_start), more=more)


def _moderation_action(action: str, description: str | Promise):
    """An admin action that asks for a note, then applies `action` to the selection."""

    def act(model_admin: "ChatRecordAdmin", request: HttpRequest, queryset: QuerySet):
        return model_admin.moderate_selected(request, queryset, action)

    act.__name__ = f"records_{action}"
    return admin.action(description=description, permissions=["moderate"])(act)


@admin.register(ChatRecord)
class ChatRecordAdmin(admin.ModelAdmin):
    list_display = (
        "id", "question_and_answer", "user", "model_and_source", "status_display",
        "rating_display", "created", "moderation_display",
    )  # fmt: skip
    list_display_links = ("id", "question_and_answer")
    list_filter = (
        ModerationFilter, ("is_hidden", admin.BooleanFieldListFilter), "status", "rating",
        "source", "terminal", "model_name", FirstTokenFilter, "content_check_suggest",
        "created_at", OwnerFilter,
    )  # fmt: skip
    search_fields = (
        "question", "answer", "owner__openid", "owner__nickname", "client_id", "=error_code",
    )  # fmt: skip
    search_help_text = _("Words of the question or answer, an openid, a nickname or an error code.")
    list_select_related = ("owner",)
    list_per_page = 100
    ordering = ("-created_at", "-id")
    actions = (
        _moderation_action(Action.REVIEWED, _("Mark selected records reviewed")),
        _moderation_action(Action.FLAGGED, _("Flag selected records for review")),
        _moderation_action(Action.HIDDEN, _("Hide selected records from their owners")),
        _moderation_action(Action.UNHIDDEN, _("Unhide selected records")),
        "export_selected",
    )
    fieldsets = (
        (
            _("Record"),
            {
                "fields": (
                    "user", "session_link", "source", "terminal", "model_name", "status",
                    "error_code", "client_id", "question_type",
                )
            },
        ),
        (
            _("Rating and moderation"),
            {"fields": ("rating", "rating_reason", "moderation", "is_hidden")},
        ),
        (
            _("Content check"),
            {
                "fields": (
                    "content_check_suggest", "content_check_side", "content_label",
                    "content_check_trace_id",
                )
            },
        ),
        (
            _("Tokens and timings"),
            {
                "fields": (
                    "created_at", "first_token", "finished_at", "duration", "heartbeat_at",
                    "prompt_tokens", "completion_tokens", "total_tokens",
                )
            },
        ),
    )  # fmt: skip
    # Everything but the rating is read-only, for everyone: answers are what the model or
    # the page produced, and moderation changes only through its actions (which log them).
    readonly_fields = (
        "user", "session_link", "source", "terminal", "model_name", "status", "error_code",
        "client_id", "moderation", "is_hidden", "created_at", "first_token", "finished_at",
        "duration", "heartbeat_at", "prompt_tokens", "completion_tokens", "total_tokens",
        "content_check_suggest", "content_check_side", "content_label", "content_check_trace_id",
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # records are made by the API only (they need an owner, a status...)

    def has_moderate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("chat.moderate_chatrecord")

    # The records list and a record's page need the width: no app menu on their left (the
    # page's own links lead to the queue, the dashboard and the export).
    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        return super().changelist_view(request, {**WIDE_PAGE, **(extra_context or {})})

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[ChangeList]:
        return RecordChangeList

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        if request.GET.get(ModerationFilter.parameter_name) == QUEUE:
            return ("created_at", "id")  # the queue is worked oldest first
        return self.ordering

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("export/", view(self.export_view), name="chat_chatrecord_export"),
            path(
                "<path:object_id>/moderate/",
                view(self.moderate_view),
                name="chat_chatrecord_moderate",
            ),
            *super().get_urls(),
        ]

    # --- Columns ----------------------------------------------------------------------------

    @admin.display(description=_("question / answer"))
    def question_and_answer(self, record: ChatRecord) -> str:
        return format_html(
            '<span class="preview-question">{}</span><span class="preview-answer">{}</span>',
            _preview(record.question),
            _answer_preview(record.answer_start) or gettext("(no answer)"),
        )

    @admin.display(description=_("model · terminal · source"), ordering="model_name")
    def model_and_source(self, record: ChatRecord) -> str:
        return format_html(
            '{}<br><small>{} · <span class="source {}">{}</span></small>',
            record.model_name or "—",
            record.get_terminal_display(),
            record.source,
            record.get_source_display(),
        )

    @admin.display(description=_("user"), ordering="owner__openid")
    def user(self, record: ChatRecord) -> str:
        owner = record.owner
        return format_html(
            '<a href="{}?owner={}" title="{}">{}</a>',
            reverse("admin:chat_chatrecord_changelist"),
            owner.pk,
            gettext("Only this user's records"),
            owner.openid or owner.username,
        )

    @admin.display(description=_("status · first token"), ordering="status")
    def status_display(self, record: ChatRecord) -> str:
        return format_html(
            "{}<br><small>{}</small>",
            record.get_status_display(),
            record.error_code or self.first_token(record),
        )

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, record: ChatRecord) -> str:
        local = timezone.localtime(record.created_at)
        return format_html(
            "{}<br><small>{}</small>", local.strftime("%Y-%m-%d"), local.strftime("%H:%M:%S")
        )

    @admin.display(description=_("rating"), ordering="rating")
    def rating_display(self, record: ChatRecord) -> str:
        if record.rating == ChatRecord.Rating.NONE:
            return "—"
        css = "useful" if record.rating == ChatRecord.Rating.USEFUL else "not-useful"
        label = record.get_rating_display()
        if not record.rating_reason:
            return format_html('<span class="rating {}">{}</span>', css, label)
        return format_html(
            '<span class="rating {}">{}</span><br><small>“{}”</small>',
            css,
            label,
            _preview(record.rating_reason),
        )

    @admin.display(description=_("first token"), ordering="first_token_ms")
    def first_token(self, record: ChatRecord) -> str:
        if record.first_token_ms is None:
            return "—"
        return seconds(record.first_token_ms / 1000, decimals=2)

    @admin.display(description=_("moderation"), ordering="moderation")
    def moderation_display(self, record: ChatRecord) -> str:
        badges = []
        if record.moderation != ChatRecord.Moderation.UNREVIEWED:  # the usual: no badge
            badges.append((record.moderation, record.get_moderation_display()))
        if record.is_hidden:
            # Not "hidden": the admin's own CSS hides any element of that class.
            badges.append(("is-hidden", gettext("Hidden")))
        if not badges:
            return "—"
        return format_html_join(" ", '<span class="moderation {}">{}</span>', badges)

    @admin.display(description=_("session"))
    def session_link(self, record: ChatRecord) -> str:
        url = reverse("admin:chat_chatsession_change", args=[record.session_id])
        return format_html('<a href="{}">{}</a>', url, record.session)

    @admin.display(description=_("duration"))
    def duration(self, record: ChatRecord) -> str:
        if record.finished_at is None:
            return "—"
        return seconds((record.finished_at - record.created_at).total_seconds(), decimals=1)

    @admin.display(description=_("total tokens"))
    def total_tokens(self, record: ChatRecord) -> int | None:
        return record.total_tokens

    @admin.display(description=_("content label"))
    def content_label(self, record: ChatRecord) -> str:
        label = record.content_check_label
        if label is None:
            return "—"
        name = _CONTENT_LABELS.get(label)
        return f"{label} ({name})" if name else str(label)

    # --- The record page ----------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[ChatRecord]:
        return super().get_queryset(request).select_related("owner", "session")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None
    ) -> HttpResponse:
        record = self.get_object(request, object_id)
        extra = {}
        if record is not None and self.has_view_permission(request, record):
            extra = self._review_context(request, record)
        context = {**WIDE_PAGE, **extra, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, context)

    def _review_context(self, request: HttpRequest, record: ChatRecord) -> dict:
        return {
            "record": record,
            "answer_html": mark_safe(markdown_to_safe_html(record.answer)),  # sanitized
            "conversation": conversation(record),
            "moderation_log": moderation_log(record=record),
            "can_moderate": self.has_moderate_permission(request),
            "moderation_actions": actions_for(record),
            "moderation_form": ModerationForm(),
        }

    @method_decorator(require_POST)
    def moderate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The record page's moderation buttons: act, then back to the page."""
        if not self.has_moderate_permission(request):
            raise PermissionDenied
        record = self.get_object(request, object_id)
        if record is None:
            raise Http404("No such record.")
        page = reverse("admin:chat_chatrecord_change", args=[record.pk])
        form = ModerationForm(request.POST)
        if not form.is_valid():
            for errors in form.errors.values():
                self.message_user(request, " ".join(errors), messages.ERROR)
            return HttpResponseRedirect(page)
        action = form.cleaned_data["moderation"]
        done = records_moderate(
            records=ChatRecord.objects.filter(pk=record.pk),
            action=action,
            by=request.user,
            note=form.cleaned_data["note"],
        )
        if done:
            # Translators: the message after a moderation action, e.g. "Flagged."
            done_message = gettext("%(action)s.") % {"action": Action(action).label}
            self.message_user(request, done_message, messages.SUCCESS)
        else:
            self.message_user(
                request, gettext("Nothing changed: it already was."), messages.WARNING
            )
        return HttpResponseRedirect(page)

    # --- Moderating a selection ---------------------------------------------------------------

    def moderate_selected(self, request: HttpRequest, queryset: QuerySet, action: str):
        """Ask for the note first (a page like Django's delete confirmation), then act."""
        data = None
        if "apply" in request.POST:
            data = request.POST.copy()
            data["moderation"] = action  # what the chosen admin action says, nothing else
        form = ModerationForm(data, initial={"moderation": action})
        count = queryset.count()
        if form.is_bound and form.is_valid():
            done = records_moderate(
                records=queryset, action=action, by=request.user, note=form.cleaned_data["note"]
            )
            self.message_user(request, done_selection(action, len(done), count), messages.SUCCESS)
            return None
        shown = list(queryset.select_related(None).only("id", "question")[:SELECTION_SHOWN])
        label = Action(action).label
        summary = gettext("%(action)s: %(records)s") % {
            "action": label,
            "records": records_phrase(count),
        }
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": label,
            "action": action,
            "action_label": label,
            "form": form,
            "records": shown,
            "summary": summary,
            "more": count - len(shown),
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_name": request.POST.get("action", ""),
        }
        return TemplateResponse(request, "admin/chat/chatrecord/moderate_selected.html", context)

    # --- Export -------------------------------------------------------------------------------

    @admin.action(description=_("Export selected records as CSV"), permissions=["view"])
    def export_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        return records_csv_response(queryset)

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """Every record the changelist shows with the same filters and search, as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest(
                gettext("Unknown filter in the address; export from the list.")
            )
        return records_csv_response(changelist.queryset)
