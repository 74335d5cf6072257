"""The staff dashboard's figures: the last 30 days, per day, from aggregate queries.

Nothing here loops over records: each figure is an aggregate query in the database (five
in all, whatever the number of records), and Python only lays out their small results.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import pairwise

from django.db.models import Aggregate, Count, IntegerField, Q, QuerySet, Value
from django.db.models.functions import Substr
from django.utils import timezone

from chat.models import ChatRecord

DAYS = 30
LATEST_NOT_USEFUL = 10
PREVIEW_CHARS = 120
Status = ChatRecord.Status
Rating = ChatRecord.Rating
# Counts count a column of the dashboard's index (not the id, which it lacks): PostgreSQL
# then answers from the index alone instead of visiting every record's row (~10x the time).
_INDEXED = "created_at"


class PercentileDisc(Aggregate):
    """The value at `fraction` of the ordered values, nearest rank (the first whose
    cumulative share reaches it): PostgreSQL's percentile_disc. SQLite has none, so the
    same definition runs there as an aggregate function registered on its connections
    (`sqlite_percentile_register`), as Django does for StdDev on SQLite."""

    function = "PERCENTILE_DISC"
    name = "PercentileDisc"
    output_field = IntegerField()
    template = "%(function)s(%(fraction)r) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: str, fraction: float) -> None:
        super().__init__(expression, fraction=float(fraction))

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(
            compiler,
            connection,
            function=_SQLITE_PERCENTILE,
            template="%(function)s(%(expressions)s, %(fraction)r)",
            **extra_context,
        )


_SQLITE_PERCENTILE = "CHAT_PERCENTILE_DISC"


class _SqlitePercentileDisc:
    def __init__(self) -> None:
        self.values: list[float] = []
        self.fraction = 0.5

    def step(self, value: float | None, fraction: float) -> None:
        if value is not None:
            self.values.append(value)
        self.fraction = fraction

    def finalize(self) -> float | None:
        if not self.values:
            return None
        self.values.sort()
        rank = max(math.ceil(self.fraction * len(self.values)), 1)
        return self.values[rank - 1]


def sqlite_percentile_register(sender: object, connection, **kwargs: object) -> None:
    """connection_created: give a new SQLite connection the percentile aggregate."""
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate(_SQLITE_PERCENTILE, 2, _SqlitePercentileDisc)


@dataclass(frozen=True)
class DayFigures:
    day: date
    questions: int = 0
    users: int = 0
    useful: int = 0
    not_useful: int = 0
    stopped: int = 0
    interrupted: int = 0
    errors: int = 0

    def share(self, count: int, *, of: int | None = None) -> float | None:
        """`count` as a percentage of the day's questions (or of `of`); None: none."""
        whole = self.questions if of is None else of
        return 100 * count / whole if whole else None

    @property
    def rated(self) -> int:
        return self.useful + self.not_useful


@dataclass(frozen=True)
class ModelFirstToken:
    """Time to first token of one model, per day (ms; None on a day it answered nothing)."""

    model: str
    answers: int
    p50: list[int | None]
    p95: list[int | None]


@dataclass(frozen=True)
class Dashboard:
    days: list[DayFigures]  # oldest first, one per day, days without records included
    first_token: list[ModelFirstToken]  # busiest model first
    error_codes: list[dict]  # {"error_code", "status", "count"}, most frequent first
    users: int  # distinct users over the whole period
    latest_not_useful: list[ChatRecord] = field(default_factory=list)

    @property
    def total(self) -> DayFigures:
        sums = {
            name: sum(getattr(day, name) for day in self.days)
            for name in ("questions", "useful", "not_useful", "stopped", "interrupted", "errors")
        }
        return DayFigures(day=self.days[-1].day, users=self.users, **sums)


def _day_starts(today: date) -> list[datetime]:
    """Local midnight of each of the DAYS days up to `today`, and of the day after."""
    zone = timezone.get_current_timezone()
    first = today - timedelta(days=DAYS - 1)
    return [datetime.combine(first + timedelta(days=n), time(), zone) for n in range(DAYS + 1)]


def _each_day(starts: list[datetime], shape: Callable[[QuerySet], QuerySet]) -> list[dict]:
    """`shape` applied to each day's records (tagged `day_index`, 0 the oldest), run as one
    UNION ALL statement. Each part reads one day's slice of the created_at index with no
    arithmetic per record; a GROUP BY over a computed local day costs ~3x the CPU on SQLite
    (and TruncDate calls a Python function per record there). Local midnights come from
    the time zone, so days are exact across daylight-saving changes."""
    parts = [
        shape(
            ChatRecord.objects.filter(created_at__gte=start, created_at__lt=end).annotate(
                day_index=Value(index, output_field=IntegerField())
            )
        ).order_by()
        for index, (start, end) in enumerate(pairwise(starts))
    ]
    return list(parts[0].union(*parts[1:], all=True))


def dashboard_figures(*, today: date | None = None) -> Dashboard:
    starts = _day_starts(today or timezone.localdate())
    period = ChatRecord.objects.filter(created_at__gte=starts[0], created_at__lt=starts[-1])
    return Dashboard(
        days=_per_day(starts),
        first_token=_first_token(starts),
        error_codes=list(
            period.exclude(error_code="")
            .values("error_code", "status")
            .annotate(count=Count("*"))
            .order_by("-count", "error_code")
        ),
        users=period.aggregate(users=Count("owner", distinct=True))["users"],
        latest_not_useful=latest_not_useful(),
    )


def _per_day(starts: list[datetime]) -> list[DayFigures]:
    rows = _each_day(
        starts,
        lambda day: day.values("day_index").annotate(
            questions=Count("*"),
            users=Count("owner", distinct=True),
            useful=Count(_INDEXED, filter=Q(rating=Rating.USEFUL)),
            not_useful=Count(_INDEXED, filter=Q(rating=Rating.NOT_USEFUL)),
            stopped=Count(_INDEXED, filter=Q(status=Status.STOPPED)),
            interrupted=Count(_INDEXED, filter=Q(status=Status.INTERRUPTED)),
            errors=Count(_INDEXED, filter=Q(status=Status.ERROR)),
        ),
    )
    by_index = {row.pop("day_index"): row for row in rows}
    return [
        DayFigures(day=start.date(), **by_index[index]) for index, start in enumerate(starts[:-1])
    ]


def _first_token(starts: list[datetime]) -> list[ModelFirstToken]:
    rows = _each_day(
        starts,
        lambda day: (
            day.filter(first_token_ms__isnull=False)
            .values("day_index", "model_name")
            .annotate(
                answers=Count("*"),
                p50=PercentileDisc("first_token_ms", 0.5),
                p95=PercentileDisc("first_token_ms", 0.95),
            )
        ),
    )
    models: dict[str, dict] = {}
    for row in rows:  # one per model and day
        model = models.setdefault(
            row["model_name"], {"answers": 0, "p50": [None] * DAYS, "p95": [None] * DAYS}
        )
        model["answers"] += row["answers"]
        model["p50"][row["day_index"]] = row["p50"]
        model["p95"][row["day_index"]] = row["p95"]
    figures = [ModelFirstToken(model=name, **values) for name, values in models.items()]
    return sorted(figures, key=lambda figure: (-figure.answers, figure.model))


def latest_not_useful() -> list[ChatRecord]:
    """The newest answers rated not useful, with the start of their question only."""
    records = (
        ChatRecord.objects.filter(rating=Rating.NOT_USEFUL)
        .select_related("owner")
        .annotate(
            question_start=Substr("question", 1, PREVIEW_CHARS),
        )
        .defer("question", "answer")
        .order_by("-created_at", "-pk")
    )
    return list(records[:LATEST_NOT_USEFUL])
