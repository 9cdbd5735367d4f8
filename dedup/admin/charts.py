"""Draw the dashboard's small charts as inline SVG on the server: no chart library, no CDN, no JavaScript.

Plain functions from figures to markup, so they are tested without a database. Colours come from the admin's CSS
variables (text, lines, the primary bar colour), so the charts follow the light and the dark theme; the series
colours are mid-tones that read on both.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from django.utils.formats import date_format
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

SERIES_COLOURS = ("#4a90b8", "#e07b39", "#5aa84a", "#b3478c", "#c9a227", "#7a6ad8", "#3fa7a0")
FONT = 'font-family="inherit" font-size="11"'


def _frame(width: int, height: int, title: str, body: str) -> SafeString:
    return mark_safe(
        f'<svg class="mw-chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def _n(number: float) -> str:
    """A coordinate as SVG text (format_html escapes its arguments to text, so numbers are formatted first)."""
    return f"{number:.1f}"


def _nice_max(value: int) -> int:
    """Round a maximum up to 2, 5 or 10 times a power of ten, so the axis reads well; at least 2, so that the
    middle line of a count is a whole number."""
    if value <= 2:
        return 2
    step = 1
    while True:
        for factor in (1, 2, 5):
            if value <= step * factor:
                return step * factor
        step *= 10


def empty_chart(message: str, *, width: int = 340, height: int = 60) -> SafeString:
    body = format_html(
        '<text x="{}" y="{}" text-anchor="middle" style="fill: var(--body-quiet-color)" {}>{}</text>',
        width // 2,
        height // 2 + 4,
        mark_safe(FONT),
        message,
    )
    return _frame(width, height, message, str(body))


def hbar_chart(items: Sequence[tuple[str, int]], *, title: str, empty: str, width: int = 340) -> SafeString:
    """Horizontal bars, one per (label, value): the label above its bar, the value at the bar's end."""
    if not items:
        return empty_chart(empty, width=width)
    row, left = 30, 4
    height = row * len(items) + 2
    top = _nice_max(max(value for _label, value in items))
    span = width - left - 40
    parts = []
    for index, (label, value) in enumerate(items):
        y = index * row
        bar = max(2, round(span * value / top)) if value else 0
        short = label if len(label) <= 52 else label[:51] + "\u2026"
        parts.append(
            format_html(
                "<g><title>{}: {}</title>"
                '<text x="{}" y="{}" style="fill: var(--body-fg)" {}>{}</text>'
                '<rect x="{}" y="{}" width="{}" height="10" rx="2" style="fill: var(--secondary)"/>'
                '<text x="{}" y="{}" style="fill: var(--body-fg)" {}>{}</text></g>',
                label, value,
                left, y + 12, mark_safe(FONT), short,
                left, y + 16, bar,
                left + bar + 4, y + 25, mark_safe(FONT), value,
            )
        )
    return _frame(width, height, title, "".join(str(part) for part in parts))


def day_bar_chart(days: Sequence[tuple[date, int]], *, title: str, empty: str, width: int = 340) -> SafeString:
    """Vertical bars per day, the first, middle and last day labelled under the axis."""
    if not days or not any(value for _day, value in days):
        return empty_chart(empty, width=width)
    height, left, bottom, top_pad = 150, 28, 22, 8
    top = _nice_max(max(value for _day, value in days))
    plot_w, plot_h = width - left - 6, height - bottom - top_pad
    slot = plot_w / len(days)
    parts = [_y_axis(left, top_pad, plot_w, plot_h, top)]
    for index, (day, value) in enumerate(days):
        bar_h = plot_h * value / top
        x = left + index * slot + 1
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" style="fill: var(--secondary)">'
                "<title>{}: {}</title></rect>",
                _n(x), _n(top_pad + plot_h - bar_h), _n(max(1.0, slot - 2)), _n(bar_h),
                date_format(day, "SHORT_DATE_FORMAT"), value,
            )
        )
    # The first label starts at the axis and the last ends at the plot's edge, so that neither is cut off
    # (a month's name is longer in some languages: "5 дек.").
    for index in sorted({0, len(days) // 2, len(days) - 1}):
        if index == len(days) - 1 and index:
            x, anchor = left + plot_w, "end"
        elif index == 0:
            x, anchor = left, "start"
        else:
            x, anchor = left + index * slot + slot / 2, "middle"
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="{}" style="fill: var(--body-quiet-color)" {}>{}</text>',
                _n(x), height - 6, anchor, mark_safe(FONT), date_format(days[index][0], "j M"),
            )
        )
    return _frame(width, height, title, "".join(str(part) for part in parts))


def line_chart(
    series: dict[str, Sequence[tuple[object, int]]], *, title: str, empty: str, width: int = 340
) -> SafeString:
    """One line per series over the same points in time (the scans), with a legend above."""
    points = max((len(values) for values in series.values()), default=0)
    if not points:
        return empty_chart(empty, width=width)
    legend_h, height, left, bottom, top_pad = 18 * ((len(series) + 2) // 3), 170, 28, 22, 8
    height += legend_h
    top = _nice_max(max(value for values in series.values() for _when, value in values))
    plot_w, plot_h = width - left - 10, height - legend_h - bottom - top_pad
    y0 = legend_h + top_pad
    step = plot_w / max(1, points - 1)
    parts = [_y_axis(left, y0, plot_w, plot_h, top)]
    for index, (name, values) in enumerate(series.items()):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        lx, ly = 4 + (index % 3) * (width // 3), 12 + 18 * (index // 3)
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="10" height="10" rx="2" fill="{}"/>'
                '<text x="{}" y="{}" style="fill: var(--body-fg)" {}>{}</text>',
                lx, ly - 9, colour, lx + 14, ly, mark_safe(FONT), name,
            )
        )
        offset = points - len(values)  # an entity added later starts later
        coords = [
            (left + (offset + i) * step if points > 1 else left + plot_w / 2, y0 + plot_h - plot_h * value / top)
            for i, (_when, value) in enumerate(values)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(format_html('<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>', path, colour))
        for (x, y), (when, value) in zip(coords, values):
            parts.append(
                format_html(
                    '<circle cx="{}" cy="{}" r="3" fill="{}"><title>{} \u2014 {}: {}</title></circle>',
                    _n(x), _n(y), colour, name, date_format(when, "SHORT_DATETIME_FORMAT"), value,
                )
            )
    longest = max(series.values(), key=len)
    for index in sorted({0, len(longest) - 1}):
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="{}" style="fill: var(--body-quiet-color)" {}>{}</text>',
                _n(left + (points - len(longest) + index) * step if points > 1 else left + plot_w / 2),
                height - 6,
                "start" if index == 0 else "end",
                mark_safe(FONT),
                date_format(longest[index][0], "j M"),
            )
        )
    return _frame(width, height, title, "".join(str(part) for part in parts))


def _y_axis(left: int, top: float, plot_w: float, plot_h: float, maximum: int) -> str:
    lines = []
    for fraction in (0, 0.5, 1):
        y = top + plot_h - plot_h * fraction
        value = maximum * fraction
        label = f"{value:g}" if value == int(value) else f"{value:.1f}"
        lines.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" style="stroke: var(--hairline-color)"/>'
                '<text x="{}" y="{}" text-anchor="end" style="fill: var(--body-quiet-color)" {}>{}</text>',
                left, _n(left + plot_w), _n(y), _n(y), left - 4, _n(y + 4), mark_safe(FONT), label,
            )
        )
    return "".join(str(line) for line in lines)
