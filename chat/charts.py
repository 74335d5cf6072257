"""Charts drawn on the server: columns (side by side or stacked) and lines over the days of
the dashboard. Each is a <figure>: its title and legend in HTML (they wrap on a phone), and
the plot as inline SVG with a y axis in the chart's unit and day labels. No script and
nothing fetched: they work offline and under the pages' CSP, and every column and point
carries its exact figure as a tooltip (an SVG <title>).

On a narrow screen the plot keeps a readable size and scrolls sideways, showing its right
end, the latest days, first (chat/static/chat/moderation.css).
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

WIDTH, HEIGHT = 720, 250
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 12, 30
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
QUIET = "#666"
GRID = "#e3e3e3"
# A day label every this many days, counted back from the last day (so today is labelled).
LABEL_EVERY = 5


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # one per label; None: nothing that day
    color: str
    dashed: bool = False


Format = Callable[[float], str]


def whole_number(value: float) -> str:
    return f"{value:,.0f}"


def percent(value: float) -> str:
    """ "12%", "12.5%"; below 10% up to two decimals, so an axis of 0.25% steps reads
    0.25, 0.5, 0.75, not 0.2, 0.5, 0.8."""
    decimals = 2 if value < 10 else 1
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".") + "%"


def seconds(value: float, *, decimals: int | None = None) -> str:
    """A duration in the admin's language ("1.2 s"). By default one decimal below 10 s and
    up to three below 1 s (trailing zeros dropped), so an axis of 0.05 s steps reads
    0.05, 0.1, 0.15, not 0.1 twice."""
    if decimals is not None:
        text = f"{value:.{decimals}f}"
    elif value < 1:
        text = f"{value:.3f}".rstrip("0").rstrip(".")
    else:
        text = f"{value:.{1 if value < 10 else 0}f}"
    return gettext("%(seconds)s s") % {"seconds": text}


@dataclass(frozen=True)
class _Axis:
    top: float  # the value at the top of the plot
    step: float  # between two gridlines

    def y(self, value: float) -> float:
        return TOP + PLOT_HEIGHT * (1 - value / self.top)


def column_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    stacked: bool = False,
    fmt: Format = whole_number,
    y_max: float | None = None,
) -> SafeString:
    """Columns per label: the series side by side, or stacked into one column."""
    heights = [
        sum(s.values[i] or 0 for s in series)
        if stacked
        else max((s.values[i] or 0) for s in series)
        for i in range(len(labels))
    ]
    axis = _axis(y_max if y_max is not None else max(heights, default=0), fmt)
    slot = PLOT_WIDTH / max(len(labels), 1)
    width = slot * 0.8 / (1 if stacked else len(series))
    parts = []
    for i, label in enumerate(labels):
        base = 0.0
        for k, one in enumerate(series):
            value = one.values[i]
            if not value:
                continue
            x = LEFT + slot * i + slot * 0.1 + (0 if stacked else k * width)
            y0, y1 = axis.y(base), axis.y(base + value)
            tip = f"{label}: {one.name} {fmt(value)}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y1:.1f}" width="{width:.1f}" height="{y0 - y1:.1f}"'
                f' fill="{escape(one.color)}"><title>{escape(tip)}</title></rect>'
            )
            if stacked:
                base += value
    return _figure(title, series, _plot(title, axis, labels, fmt, parts), shape="box")


def line_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Format = whole_number,
    y_max: float | None = None,
) -> SafeString:
    """A line per series through the days that have a value, each marked with a point (a
    hollow one for a dashed series, so the two tell apart where a point stands alone)."""
    values = [v for s in series for v in s.values if v is not None]
    axis = _axis(y_max if y_max is not None else max(values, default=0), fmt)
    slot = PLOT_WIDTH / max(len(labels), 1)
    parts = []
    for one in series:
        color = escape(one.color)
        fill = "#fff" if one.dashed else color
        points, dots = [], []
        for i, value in enumerate(one.values):
            if value is None:
                continue
            x, y = LEFT + slot * (i + 0.5), axis.y(value)
            points.append(f"{x:.1f},{y:.1f}")
            tip = escape(f"{labels[i]}: {one.name} {fmt(value)}")
            dots.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{fill}" stroke="{color}"'
                f' stroke-width="1.5"><title>{tip}</title></circle>'
            )
        dash = ' stroke-dasharray="6 4"' if one.dashed else ""
        parts.append(
            f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}"'
            f' stroke-width="2"{dash}/>'
        )
        parts.extend(dots)
    return _figure(title, series, _plot(title, axis, labels, fmt, parts), shape="line")


def _axis(largest: float, fmt: Format) -> _Axis:
    """A round top for the y axis at or above `largest`, and the step between its
    gridlines (1, 2, 2.5 or 5 times a power of ten; 2 to 5 steps; whole for counts)."""
    largest = largest if largest > 0 else 1  # an empty chart still gets an axis
    raw = largest / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if fmt is whole_number:
        step = max(round(step), 1)
    return _Axis(top=step * max(math.ceil(largest / step - 1e-9), 1), step=step)


def _plot(title: str, axis: _Axis, labels: Sequence[str], fmt: Format, parts: list[str]) -> str:
    slot = PLOT_WIDTH / max(len(labels), 1)
    bottom = TOP + PLOT_HEIGHT
    grid = []
    for k in range(round(axis.top / axis.step) + 1):
        y = axis.y(axis.step * k)
        grid.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{QUIET}">'
            f"{escape(fmt(axis.step * k))}</text>"
        )
    base = f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" y2="{bottom}" stroke="{QUIET}"/>'
    last = len(labels) - 1
    ticks = [
        f'<text x="{LEFT + slot * (i + 0.5):.1f}" y="{bottom + 18}" text-anchor="middle"'
        f' fill="{QUIET}">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if (last - i) % LABEL_EVERY == 0
    ]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' font-family="sans-serif" font-size="14"><title>{escape(title)}</title>'
        + "".join([*grid, base, *ticks, *parts])
        + "</svg>"
    )


def _figure(title: str, series: Sequence[Series], plot: str, *, shape: str) -> SafeString:
    legend = format_html_join(
        "",
        '<li><span class="swatch {}" style="--swatch: {}"></span>{}</li>',
        ((f"{shape} dashed" if one.dashed else shape, one.color, one.name) for one in series),
    )
    return format_html(
        '<figure class="chart"><figcaption>{}</figcaption><ul class="chart-legend">{}</ul>'
        '<div class="chart-plot">{}</div></figure>',
        title,
        legend,
        mark_safe(plot),  # every text in it went through escape()
    )
