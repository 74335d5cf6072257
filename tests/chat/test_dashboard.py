"""The staff dashboard: its figures on a known data set, its charts, and its page."""

import re
from datetime import date, datetime, time, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from chat.charts import Series, column_chart, line_chart, percent, seconds
from chat.dashboard import DAYS, dashboard_figures
from chat.models import ChatRecord, ChatSession

pytestmark = pytest.mark.django_db

TODAY = date(2026, 3, 20)
DASHBOARD = "/admin/dashboard/"


def _at(day: date, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    """A local time (the project's time zone, Asia/Shanghai by default)."""
    return timezone.make_aware(datetime.combine(day, time(hour, minute, second)))


def _add(owner, created_at: datetime, **fields) -> ChatRecord:
    session = ChatSession.objects.create(owner=owner)
    values = {"question": "问", "answer": "答", "status": "done", **fields}
    return ChatRecord.objects.create(session=session, owner=owner, created_at=created_at, **values)


@pytest.fixture
def known(owner, other) -> dict[str, ChatRecord]:
    """Two busy days, the edges of a day, and records outside the 30 days."""
    two_days_ago = TODAY - timedelta(days=2)
    records = {}
    # Two days ago: 5 questions from 2 users on model "a".
    for n, ms in enumerate([400, 100, 300, 200]):
        records[f"a{n}"] = _add(owner if n % 2 else other, _at(two_days_ago), model_name="a",
                                first_token_ms=ms)  # fmt: skip
    records["a0"].rating = "useful"
    records["a1"].rating = "not_useful"
    records["a1"].rating_reason = "错了"
    records["a2"].status = "stopped"
    records["a3"].status = "interrupted"
    records["a3"].error_code = "server_lost"
    for record in ("a0", "a1", "a2", "a3"):
        records[record].save()
    records["failed"] = _add(owner, _at(two_days_ago, 13), model_name="a", status="error",
                             error_code="upstream_timeout")  # fmt: skip
    # Today: model "b" three times, one user, one rated not useful.
    for n, ms in enumerate([3000, 1000, 2000]):
        records[f"b{n}"] = _add(owner, _at(TODAY, 9 + n), model_name="b", first_token_ms=ms,
                                rating="not_useful" if n == 2 else "none")  # fmt: skip
    # The last second of yesterday and the first of today, local time.
    records["late"] = _add(other, _at(TODAY - timedelta(days=1), 23, 59, 59))
    records["early"] = _add(other, _at(TODAY, 0, 0, 0), rating="useful")
    # Outside: the day before the first day, and tomorrow (a phone with a wrong clock).
    records["old"] = _add(owner, _at(TODAY - timedelta(days=DAYS), 23, 59, 59), status="error",
                          error_code="old_error")  # fmt: skip
    records["tomorrow"] = _add(owner, _at(TODAY + timedelta(days=1), 0, 0, 1))
    return records


def test_the_figures_of_a_known_data_set(known):
    figures = dashboard_figures(today=TODAY)

    days = {day.day: day for day in figures.days}
    assert len(figures.days) == DAYS
    assert figures.days[0].day == TODAY - timedelta(days=DAYS - 1)
    assert figures.days[-1].day == TODAY
    two_days_ago = days[TODAY - timedelta(days=2)]
    assert (two_days_ago.questions, two_days_ago.users) == (5, 2)
    assert (two_days_ago.useful, two_days_ago.not_useful) == (1, 1)
    assert (two_days_ago.stopped, two_days_ago.interrupted, two_days_ago.errors) == (1, 1, 1)
    assert two_days_ago.share(two_days_ago.errors) == 20
    assert two_days_ago.share(two_days_ago.useful, of=two_days_ago.rated) == 50
    assert (days[TODAY - timedelta(days=1)].questions, days[TODAY].questions) == (1, 4)
    assert (days[TODAY].users, days[TODAY].useful, days[TODAY].not_useful) == (2, 1, 1)
    assert sum(day.questions for day in figures.days) == 10
    assert figures.users == 2
    assert figures.total.questions == 10
    assert figures.error_codes == [
        {"error_code": "server_lost", "status": "interrupted", "count": 1},
        {"error_code": "upstream_timeout", "status": "error", "count": 1},
    ]


def test_first_token_percentiles_per_model_and_day_are_nearest_rank(known):
    figures = dashboard_figures(today=TODAY)

    (a, b) = sorted(figures.first_token, key=lambda model: model.model)
    index_two_days_ago, index_today = DAYS - 3, DAYS - 1
    # a: 100, 200, 300, 400 -> p50 the 2nd, p95 the 4th; b: 1000, 2000, 3000 -> 2nd, 3rd.
    assert (a.model, a.answers, a.p50[index_two_days_ago], a.p95[index_two_days_ago]) == (
        "a", 4, 200, 400,
    )  # fmt: skip
    assert (b.model, b.answers, b.p50[index_today], b.p95[index_today]) == ("b", 3, 2000, 3000)
    assert a.p50[index_today] is None
    assert [model.model for model in figures.first_token] == ["a", "b"]  # busiest first


def test_the_latest_not_useful_answers_newest_first(known):
    latest = dashboard_figures(today=TODAY).latest_not_useful

    assert [record.pk for record in latest] == [known["b2"].pk, known["a1"].pk]
    assert latest[1].rating_reason == "错了"


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def test_the_page_shows_the_figures_and_four_charts(staff_client, owner):
    now = timezone.localtime()
    for n in range(6):
        _add(owner, now - timedelta(days=n % 3), model_name="deepseek", first_token_ms=800 + n,
             rating="not_useful" if n == 0 else "useful", rating_reason="没用" if n == 0 else "",
             status="error" if n == 5 else "done",
             error_code="upstream_timeout" if n == 5 else "")  # fmt: skip

    page = staff_client.get(DASHBOARD).text

    charts = re.findall(r'<figure class="chart">.*?<svg .*?</svg></div></figure>', page, re.S)
    assert len(charts) == 4
    for title in (
        "每日提问与用户",
        "每日已评价回答：有用 / 无用占比",
        "未完整结束的回答占提问的比例",
        "各模型首字延迟：p50（实线）与 p95（虚线）",
    ):
        assert f"<figcaption>{title}</figcaption>" in page
        assert f"<title>{title}</title>" in page
    assert '<span class="swatch line" style="--swatch: #2c6e9b"></span>deepseek p50' in page
    assert '<span class="swatch line dashed" style="--swatch: #2c6e9b"></span>deepseek p95' in page
    assert '<span class="value">6</span><span class="label">提问</span>' in page
    assert "upstream_timeout" in page
    assert "<td>出错</td>" in page  # the error's status, in words
    assert "没用" in page
    assert "Traceback" not in page


def test_the_page_costs_the_same_queries_for_10_records_or_300(staff_client, owner, other):
    def add(count: int) -> None:
        now = timezone.now()
        for n in range(count):
            _add(owner if n % 2 else other, now - timedelta(days=n % 30, minutes=n),
                 model_name=f"m{n % 3}", first_token_ms=100 + n, rating="not_useful")  # fmt: skip

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get(DASHBOARD).status_code == 200
        return len(captured)  # now: the next request empties the log

    add(10)
    few = queries()
    add(290)
    many = queries()

    assert 5 <= few == many <= 7


# --- The charts ---------------------------------------------------------------------------


def test_a_column_chart_has_its_title_axis_labels_legend_and_exact_tooltips():
    chart = column_chart(
        title="Questions <per> day",
        labels=["03-18", "03-19", "03-20"],
        series=[Series("questions", [10, 0, 35], "#123"), Series("users", [4, 0, 9], "#456")],
    )

    assert chart.startswith('<figure class="chart"><figcaption>Questions &lt;per&gt; day')
    assert "<title>Questions &lt;per&gt; day</title>" in chart
    assert '<span class="swatch box" style="--swatch: #456"></span>users</li>' in chart
    assert chart.count("<rect ") == 4  # the four non-zero columns
    assert "<title>03-20: questions 35</title>" in chart
    assert ">40</text>" in chart  # the axis tops at a round 40
    assert ">03-20</text>" in chart


def test_stacked_shares_fill_the_column_and_a_line_joins_the_days_that_have_data():
    stacked = column_chart(
        title="t",
        labels=["a"],
        series=[Series("useful", [75.0], "#0a0"), Series("not useful", [25.0], "#a00")],
        stacked=True,
        fmt=percent,
        y_max=100,
    )
    gap = Series("p95", [1.0, None, 2.0, 3.0], "#00a", dashed=True)
    line = line_chart(title="t", labels=["a", "b", "c", "d"], series=[gap])

    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', stacked)]
    assert heights[0] == pytest.approx(3 * heights[1], rel=0.01)
    assert ">100%</text>" in stacked
    assert "<title>a: useful 75%</title>" in stacked
    (points,) = re.findall(r'<polyline points="([^"]+)"', line)
    assert len(points.split()) == 3  # a, c and d; nothing for b
    assert 'stroke-dasharray="6 4"' in line
    assert line.count("<circle cx=") == 3
    assert 'fill="#fff" stroke="#00a"' in line  # hollow points for the dashed series


def test_user_supplied_names_cannot_break_out_of_the_chart():
    chart = line_chart(title="t", labels=["a"], series=[Series("<script>x</script>", [1], "#000")])

    assert "<script>" not in chart
    assert "&lt;script&gt;x&lt;/script&gt;" in chart


def test_a_model_name_reaches_the_page_escaped(staff_client):
    evil = User.objects.create(username="u", openid="o")
    _add(evil, timezone.now(), model_name="<img src=x onerror=alert(1)>", first_token_ms=5)

    page = staff_client.get(DASHBOARD).text

    assert "<img src=x" not in page


def test_durations_below_a_second_keep_the_digits_that_tell_them_apart():
    labels = [seconds(step * 0.05) for step in range(5)]

    assert len(set(labels)) == 5, labels
    assert seconds(1.234, decimals=2).startswith("1.23")
    assert seconds(12.3).startswith("12")


def test_percentages_on_a_fine_axis_are_written_as_they_are():
    assert [percent(step * 0.25) for step in range(5)] == ["0%", "0.25%", "0.5%", "0.75%", "1%"]
    assert percent(12.5) == "12.5%"
    assert percent(100) == "100%"
