"""Admin pages that are not a model's: the staff dashboard."""

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from chat.admin.records import WIDE_PAGE
from chat.charts import Series, column_chart, line_chart, percent, seconds
from chat.dashboard import Dashboard, DayFigures, dashboard_figures
from chat.models import ChatRecord

# Colours a person tells apart at a glance (and in print): blue pair for volume, green and
# red for good and bad, amber / purple / red for the ways an answer ends early.
BLUE, LIGHT_BLUE = "#2c6e9b", "#8fbcd4"
GREEN, RED, AMBER, PURPLE = "#2e7d32", "#c62828", "#ef8f00", "#7b3fa0"
MODEL_COLORS = ("#2c6e9b", "#ef8f00", "#2e7d32", "#7b3fa0")


def dashboard_view(request: HttpRequest) -> HttpResponse:
    """The last 30 days at a glance (staff with the right to read records)."""
    if not request.user.has_perm("chat.view_chatrecord"):
        raise PermissionDenied
    figures = dashboard_figures()
    context = {
        **admin.site.each_context(request),
        **WIDE_PAGE,
        "title": gettext("Dashboard: the last 30 days"),
        "figures": figures,
        "kpis": _kpis(figures.total),
        "charts": dashboard_charts(figures),
        "error_codes": [
            {**row, "status_label": ChatRecord.Status(row["status"]).label}
            for row in figures.error_codes
        ],
        "time_zone": settings.TIME_ZONE,
    }
    return TemplateResponse(request, "admin/chat/dashboard.html", context)


def _kpis(total: DayFigures) -> list[tuple[str, str]]:
    """(figure, what it is) for the period as a whole."""

    def share(count: int, of: int | None = None) -> str:
        value = total.share(count, of=of)
        return "—" if value is None else percent(value)

    return [
        (f"{total.questions:,}", gettext("questions")),
        (f"{total.users:,}", gettext("users")),
        (
            share(total.useful, of=total.rated),
            gettext("useful, of %(rated)s rated") % {"rated": f"{total.rated:,}"},
        ),
        (f"{total.not_useful:,}", gettext("rated not useful")),
        (share(total.errors), gettext("errors (%(count)s)") % {"count": f"{total.errors:,}"}),
        (share(total.stopped), gettext("stopped (%(count)s)") % {"count": f"{total.stopped:,}"}),
        (
            share(total.interrupted),
            gettext("interrupted (%(count)s)") % {"count": f"{total.interrupted:,}"},
        ),
    ]


def dashboard_charts(figures: Dashboard) -> list[SafeString]:
    days = figures.days
    labels = [day.day.strftime("%m-%d") for day in days]
    volume = column_chart(
        title=gettext("Questions and users per day"),
        labels=labels,
        series=[
            Series(gettext("questions"), [d.questions for d in days], BLUE),
            Series(gettext("users"), [d.users for d in days], LIGHT_BLUE),
        ],
    )
    ratings = column_chart(
        title=gettext("Rated answers per day: useful / not useful share"),
        labels=labels,
        series=[
            Series(gettext("useful"), [d.share(d.useful, of=d.rated) for d in days], GREEN),
            Series(gettext("not useful"), [d.share(d.not_useful, of=d.rated) for d in days], RED),
        ],
        stacked=True,
        fmt=percent,
        y_max=100,
    )
    endings = line_chart(
        title=gettext("Answers cut short, share of questions"),
        labels=labels,
        series=[
            Series(gettext("stopped"), [d.share(d.stopped) for d in days], AMBER),
            Series(gettext("interrupted"), [d.share(d.interrupted) for d in days], PURPLE),
            Series(gettext("error"), [d.share(d.errors) for d in days], RED),
        ],
        fmt=percent,
    )
    first_token = line_chart(
        title=gettext("Time to first token per model: p50 (solid) and p95 (dashed)"),
        labels=labels,
        series=_first_token_series(figures),
        fmt=seconds,
    )
    return [volume, ratings, endings, first_token]


def _first_token_series(figures: Dashboard) -> list[Series]:
    series = []
    for model, color in zip(figures.first_token, MODEL_COLORS, strict=False):
        name = model.model or gettext("(unnamed)")
        series.append(Series(f"{name} p50", _in_seconds(model.p50), color))
        series.append(Series(f"{name} p95", _in_seconds(model.p95), color, dashed=True))
    return series


def _in_seconds(values: list[int | None]) -> list[float | None]:
    return [None if ms is None else ms / 1000 for ms in values]
