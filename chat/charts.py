"""Charts as inline SVG, drawn on the server: columns (side by side or stacked) and lines
over the days of the dashboard, each with a title, a y axis with its unit, day labels and
a legend. No script and nothing fetched: they work offline and under the pages' CSP, and
every column and point carries its exact figure as a tooltip (an SVG <title>).
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, PLOT_HEIGHT = 720, 210
LEFT, RIGHT, BOTTOM = 56, 16, 30
PLOT_WIDTH = WIDTH - LEFT - RIGHT
TITLE_HEIGHT, LEGEND_ROW = 30, 18
TEXT = "#333"
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


@dataclass(frozen=True)
class _Frame:
    """Where the plot sits: below the title and as many legend rows as the series need."""

    series: Sequence[Series]
    y_top: float  # the value at the top of the y axis
    y_step: float  # between two gridlines

    @cached_property
    def legend(self) -> list[list[tuple[int, Series]]]:
        rows: list[list[tuple[int, Series]]] = [[]]
        x = LEFT
        for one in self.series:
            width = 20 + _text_width(one.name) + 18
            if rows[-1] and x + width > WIDTH - RIGHT:
                rows.append([])
                x = LEFT
            rows[-1].append((x, one))
            x += width
        return rows

    @cached_property
    def top(self) -> float:
        return TITLE_HEIGHT + LEGEND_ROW * len(self.legend) + 10

    @property
    def height(self) -> float:
        return self.top + PLOT_HEIGHT + BOTTOM

    def y(self, value: float) -> float:
        return self.top + PLOT_HEIGHT * (1 - value / self.y_top)


Format = Callable[[float], str]


def whole_number(value: float) -> str:
    return f"{value:,.0f}"


def percent(value: float) -> str:
    return f"{value:.0f}%" if value == round(value) else f"{value:.1f}%"


def seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


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
    largest = y_max if y_max is not None else max(heights, default=0)
    frame = _Frame(series, *_axis(largest, fmt))
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
            y0, y1 = frame.y(base), frame.y(base + value)
            tip = f"{label}: {one.name} {fmt(value)}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y1:.1f}" width="{width:.1f}" height="{y0 - y1:.1f}"'
                f' fill="{one.color}"><title>{escape(tip)}</title></rect>'
            )
            if stacked:
                base += value
    return _svg(frame, title, labels, fmt, parts, legend_shape="box")


def line_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Format = whole_number,
    y_max: float | None = None,
) -> SafeString:
    """A line per series; a day without a value breaks the line there."""
    values = [v for s in series for v in s.values if v is not None]
    largest = y_max if y_max is not None else max(values, default=0)
    frame = _Frame(series, *_axis(largest, fmt))
    slot = PLOT_WIDTH / max(len(labels), 1)
    parts = []
    for one in series:
        path, points = [], []
        for i, value in enumerate(one.values):
            if value is None:
                path.append(None)
                continue
            x, y = LEFT + slot * (i + 0.5), frame.y(value)
            path.append((x, y))
            tip = escape(f"{labels[i]}: {one.name} {fmt(value)}")
            points.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{one.color}"><title>{tip}</title>'
                "</circle>"
            )
        dash = ' stroke-dasharray="6 4"' if one.dashed else ""
        parts.append(
            f'<path d="{_path_data(path)}" fill="none" stroke="{one.color}" stroke-width="2"'
            f"{dash}/>"
        )
        parts.extend(points)
    return _svg(frame, title, labels, fmt, parts, legend_shape="line")


def _path_data(points: list[tuple[float, float] | None]) -> str:
    commands, pen_down = [], False
    for point in points:
        if point is None:
            pen_down = False
            continue
        commands.append(f"{'L' if pen_down else 'M'}{point[0]:.1f},{point[1]:.1f}")
        pen_down = True
    return " ".join(commands)


def _axis(largest: float, fmt: Format) -> tuple[float, float]:
    """A round top for the y axis at or above `largest`, and the step between its
    gridlines (1, 2, 2.5 or 5 times a power of ten; 2 to 5 steps; whole for counts)."""
    largest = largest if largest > 0 else 1  # an empty chart still gets an axis
    raw = largest / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if fmt is whole_number:
        step = max(round(step), 1)
    return step * max(math.ceil(largest / step - 1e-9), 1), step


def _svg(
    frame: _Frame,
    title: str,
    labels: Sequence[str],
    fmt: Format,
    parts: list[str],
    *,
    legend_shape: str,
) -> SafeString:
    slot = PLOT_WIDTH / max(len(labels), 1)
    bottom = frame.top + PLOT_HEIGHT
    grid = []
    for k in range(round(frame.y_top / frame.y_step) + 1):
        value = frame.y_step * k
        y = frame.y(value)
        grid.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{QUIET}">'
            f"{escape(fmt(value))}</text>"
        )
    axis = f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom}" y2="{bottom}" stroke="{QUIET}"/>'
    last = len(labels) - 1
    ticks = [
        f'<text x="{LEFT + slot * (i + 0.5):.1f}" y="{bottom + 18}" text-anchor="middle"'
        f' fill="{QUIET}">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if (last - i) % LABEL_EVERY == 0
    ]
    body = "".join([*grid, axis, *ticks, *parts, _legend(frame, legend_shape)])
    return mark_safe(  # every text in it went through escape()
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {frame.height:.0f}"'
        f' role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="12">'
        f"<title>{escape(title)}</title>"
        f'<text x="{LEFT}" y="18" font-size="15" font-weight="bold" fill="{TEXT}">'
        f"{escape(title)}</text>{body}</svg>"
    )


def _legend(frame: _Frame, shape: str) -> str:
    items = []
    for row, entries in enumerate(frame.legend):
        y = TITLE_HEIGHT + LEGEND_ROW * row
        for x, one in entries:
            if shape == "box":
                mark = f'<rect x="{x}" y="{y}" width="12" height="12" fill="{one.color}"/>'
            else:
                dash = ' stroke-dasharray="6 4"' if one.dashed else ""
                mark = (
                    f'<line x1="{x}" x2="{x + 16}" y1="{y + 6}" y2="{y + 6}"'
                    f' stroke="{one.color}" stroke-width="2"{dash}/>'
                )
            text = f'<text x="{x + 20}" y="{y + 10}" fill="{TEXT}">{escape(one.name)}</text>'
            items.append(mark + text)
    return "".join(items)


def _text_width(text: str) -> int:
    # About 7 px per Latin character at 12 px, twice that for CJK: enough to space a legend.
    return sum(13 if ord(char) > 0x2E80 else 7 for char in text)
