"""Server-side charts as inline SVG: a line chart with axis labels, threshold line and min/max/last,
and a sparkline. No JavaScript, nothing from a CDN; every piece of text is escaped.

Gaps (None values) break the line instead of being drawn as zero.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Plot area margins of the line chart (pixels): room for the y labels left and time labels below.
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 14, 30
LINE_COLOUR, THRESHOLD_COLOUR, GRID_COLOUR, TEXT_COLOUR = "#2454d6", "#b42318", "#dde1e8", "#5d6677"


def format_value(value: float | None, unit: str) -> str:
    """A value for a label: ratios as percentages, durations in the unit that reads best."""
    if value is None:
        return "–"
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "flag":
        return "breached" if value >= 1 else "ok"
    if unit == "ms":
        return f"{value:.0f} ms" if abs(value) < 1000 else format_value(value / 1000, "seconds")
    if unit == "seconds":
        size = abs(value)
        if size < 90:
            return f"{value:.1f} s" if size < 10 and value != int(value) else f"{value:.0f} s"
        if size < 90 * 60:
            return f"{value / 60:.1f} min"
        if size < 48 * 3600:
            return f"{value / 3600:.1f} h"
        return f"{value / 86400:.1f} d"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _fmt(number: float) -> str:
    """A coordinate: one decimal, no trailing zeros."""
    text = f"{number:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _bounds(values: list[float], threshold: float | None, unit: str) -> tuple[float, float]:
    candidates = list(values) + ([threshold] if threshold is not None else [])
    low, high = min(candidates), max(candidates)
    if unit in ("ratio", "flag", "count", "seconds", "ms") and low >= 0:
        low = 0.0  # amounts start at zero: a small wobble must not look like a cliff
    if high == low:
        high = low + (abs(low) or 1.0)
    return low, high


def _segments(coordinates: list[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    segments, current = [], []
    for point in coordinates:
        if point is None:
            if current:
                segments.append(current)
            current = []
        else:
            current.append(point)
    if current:
        segments.append(current)
    return segments


def _points_attribute(segment: list[tuple[float, float]]) -> str:
    return " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in segment)


def _chart_id(title: str, extra: str) -> str:
    return "chart-" + hashlib.sha256(f"{title}|{extra}".encode()).hexdigest()[:10]


def line_chart(
    *,
    title: str,
    points: list[tuple[datetime, float | None]],
    start: datetime,
    end: datetime,
    unit: str = "count",
    threshold: float | None = None,
    width: int = 520,
    height: int = 170,
) -> SafeString:
    """A time series from `start` to `end` as an <svg> with its title and a text description (for
    screen readers): number of points, last, min and max, and the threshold when one is given."""
    values = [value for _, value in points if value is not None]
    chart_id = _chart_id(title, f"{start.isoformat()}|{len(points)}|{threshold}")
    plot_width, plot_height = width - LEFT - RIGHT, height - TOP - BOTTOM
    summary = (
        f"{len(values)} point{'s' if len(values) != 1 else ''} from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    )
    if values:
        summary += (
            f"; last {format_value(points[-1][1], unit)}, min {format_value(min(values), unit)}, "
            f"max {format_value(max(values), unit)}"
        )
    if threshold is not None:
        summary += f"; threshold {format_value(threshold, unit)}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(summary)}</desc>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_width}" height="{plot_height}" fill="#fff" stroke="{GRID_COLOUR}"/>',
    ]
    if not values:
        parts.append(
            f'<text x="{_fmt(LEFT + plot_width / 2)}" y="{_fmt(TOP + plot_height / 2)}" text-anchor="middle" '
            f'fill="{TEXT_COLOUR}" font-size="12">No data in this range yet</text>'
        )
    else:
        low, high = _bounds(values, threshold, unit)
        span = (end - start).total_seconds() or 1.0

        def x_of(at: datetime) -> float:
            return LEFT + plot_width * min(max((at - start).total_seconds() / span, 0.0), 1.0)

        def y_of(value: float) -> float:
            return TOP + plot_height * (1 - (value - low) / (high - low))

        for value in (low, (low + high) / 2, high):
            y = _fmt(y_of(value))
            parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_width}" y1="{y}" y2="{y}" stroke="{GRID_COLOUR}"/>')
            parts.append(
                f'<text x="{LEFT - 6}" y="{y}" text-anchor="end" dominant-baseline="middle" fill="{TEXT_COLOUR}" '
                f'font-size="11">{escape(format_value(value, unit))}</text>'
            )
        for at, anchor in ((start, "start"), (end, "end")):
            parts.append(
                f'<text x="{_fmt(x_of(at))}" y="{height - 10}" text-anchor="{anchor}" fill="{TEXT_COLOUR}" '
                f'font-size="11">{escape(f"{at:%m-%d %H:%M}")}</text>'
            )
        if threshold is not None:
            y = _fmt(y_of(threshold))
            parts.append(
                f'<line class="threshold" x1="{LEFT}" x2="{LEFT + plot_width}" y1="{y}" y2="{y}" '
                f'stroke="{THRESHOLD_COLOUR}" stroke-dasharray="5 3"/>'
            )
        coordinates = [None if value is None else (x_of(at), y_of(value)) for at, value in points]
        for segment in _segments(coordinates):
            if len(segment) == 1:
                x, y = segment[0]
                parts.append(f'<circle cx="{_fmt(x)}" cy="{_fmt(y)}" r="2" fill="{LINE_COLOUR}"/>')
            else:
                parts.append(
                    f'<polyline class="series" fill="none" stroke="{LINE_COLOUR}" stroke-width="1.6" '
                    f'points="{_points_attribute(segment)}"/>'
                )
        last = next((point for point in reversed(coordinates) if point is not None), None)
        if last is not None:
            parts.append(f'<circle class="last" cx="{_fmt(last[0])}" cy="{_fmt(last[1])}" r="3" fill="{LINE_COLOUR}"/>')
        legend = (
            f"last {format_value(points[-1][1], unit)} · min {format_value(min(values), unit)} · "
            f"max {format_value(max(values), unit)}"
        )
        parts.append(
            f'<text class="legend" x="{width - RIGHT}" y="{TOP - 3}" text-anchor="end" fill="{TEXT_COLOUR}" '
            f'font-size="11">{escape(legend)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above went through escape()


def sparkline(
    *, title: str, values: list[float | None], unit: str = "count", width: int = 140, height: int = 28
) -> SafeString:
    """A small line of equally spaced values (a table cell's trend), gaps for None."""
    present = [value for value in values if value is not None]
    chart_id = _chart_id(title, f"spark|{len(values)}")
    summary = f"{len(present)} points"
    if present:
        summary += (
            f"; last {format_value(values[-1], unit)}, min {format_value(min(present), unit)}, "
            f"max {format_value(max(present), unit)}"
        )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="sparkline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(summary)}</desc>',
    ]
    if present:
        low, high = _bounds(present, None, unit)
        step = (width - 4) / (len(values) - 1) if len(values) > 1 else 0
        coordinates = [
            None if value is None else (2 + index * step, 2 + (height - 4) * (1 - (value - low) / (high - low)))
            for index, value in enumerate(values)
        ]
        for segment in _segments(coordinates):
            if len(segment) == 1:
                parts.append(
                    f'<circle cx="{_fmt(segment[0][0])}" cy="{_fmt(segment[0][1])}" r="1.5" fill="{LINE_COLOUR}"/>'
                )
            else:
                parts.append(
                    f'<polyline fill="none" stroke="{LINE_COLOUR}" stroke-width="1.4" '
                    f'points="{_points_attribute(segment)}"/>'
                )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above went through escape()
