"""Server-rendered SVG charts: no script, no library, readable without colour (each bar has a
title and the page has the numbers as a table), every bar a link to the records behind it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

STARTED = "#9db8e3"
COMPLETED = "#1f5fbf"
LINE = "#b42318"
AXIS = "#6b7385"


@dataclass(frozen=True)
class DayBar:
    label: str  # e.g. "2026-11-27"
    short: str  # e.g. "27 Nov"
    started: int
    completed: int
    compliance: float | None
    href: str


def _nice_max(value: int) -> int:
    if value <= 5:
        return 5
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = int(step * magnitude)
        if top >= value:
            return top
    return value


def trend_chart(days: Sequence[DayBar], *, title: str) -> SafeString:
    """Started (light) and completed (dark) bars per day, SLA compliance as a line (right
    axis, 0-100 %)."""
    width, height = 760, 220
    left, right, top, bottom = 44, 44, 14, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(days), 1)
    top_value = _nice_max(max([max(d.started, d.completed) for d in days] + [0]))
    slot = plot_w / n
    bar_w = max(1.0, slot * 0.38)
    parts: list[str] = []
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#eceef3"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="{AXIS}">{int(top_value * frac):,}</text>'
            f'<text x="{width - right + 6}" y="{y + 4:.1f}" font-size="11" '
            f'fill="{AXIS}">{int(100 * frac)}%</text>'
        )
    points: list[str] = []
    for i, d in enumerate(days):
        x0 = left + i * slot + (slot - 2 * bar_w) / 2
        h_s = plot_h * d.started / top_value
        h_c = plot_h * d.completed / top_value
        compliance = "no completions" if d.compliance is None else f"{d.compliance:.1f}% on time"
        tip = f"{d.label}: {d.started:,} started, {d.completed:,} completed, {compliance}"
        parts.append(
            format_html(
                '<a href="{}"><title>{}</title>'
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>'
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>'
                '<rect x="{}" y="{}" width="{}" height="{}" fill="transparent"/></a>',
                d.href,
                tip,
                f"{x0:.1f}",
                f"{top + plot_h - h_s:.1f}",
                f"{bar_w:.1f}",
                f"{h_s:.1f}",
                STARTED,
                f"{x0 + bar_w:.1f}",
                f"{top + plot_h - h_c:.1f}",
                f"{bar_w:.1f}",
                f"{h_c:.1f}",
                COMPLETED,
                f"{left + i * slot:.1f}",
                top,
                f"{slot:.1f}",
                plot_h,
            )
        )
        if d.compliance is not None:
            cx = left + i * slot + slot / 2
            cy = top + plot_h * (1 - d.compliance / 100)
            points.append(f"{cx:.1f},{cy:.1f}")
        if i in (0, n // 2, n - 1):
            parts.append(
                f'<text x="{left + i * slot + slot / 2:.1f}" y="{height - bottom + 16}" '
                f'text-anchor="middle" font-size="11" fill="{AXIS}">{escape(d.short)}</text>'
            )
    if len(points) > 1:
        parts.append(
            f'<polyline points="{" ".join(points)}" fill="none" stroke="{LINE}" '
            f'stroke-width="2" pointer-events="none"/>'
        )
    parts.append(
        f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" '
        f'stroke="{AXIS}"/>'
    )
    return mark_safe(  # noqa: S308 (every interpolated text is escaped above)
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="group" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">'
        f"<title>{escape(title)}</title>{''.join(str(p) for p in parts)}</svg>"
    )


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    href: str


def hbar_chart(bars: Sequence[Bar], *, title: str, color: str = "#b42318") -> SafeString:
    """Horizontal bars with their value, e.g. open exceptions per age bucket."""
    width, row_h, label_w = 360, 24, 64
    height = row_h * len(bars) + 6
    top_value = max([b.value for b in bars] + [1])
    parts: list[str] = []
    for i, b in enumerate(bars):
        y = 3 + i * row_h
        w = (width - label_w - 60) * b.value / top_value
        parts.append(
            format_html(
                '<a href="{}"><title>{}: {}</title>'
                '<rect x="0" y="{}" width="{}" height="{}" fill="transparent"/>'
                '<text x="0" y="{}" font-size="12" fill="#1d2330">{}</text>'
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>'
                '<text x="{}" y="{}" font-size="12" fill="#1d2330">{}</text></a>',
                b.href,
                b.label,
                f"{b.value:,}",
                y,
                width,
                row_h - 2,
                y + 16,
                b.label,
                label_w,
                y + 4,
                f"{max(w, 1 if b.value else 0):.1f}",
                row_h - 10,
                color,
                f"{label_w + w + 6:.1f}",
                y + 16,
                f"{b.value:,}",
            )
        )
    return mark_safe(  # noqa: S308 (every interpolated text is escaped above)
        f'<svg class="chart hbar" viewBox="0 0 {width} {height}" role="group" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f"{''.join(str(p) for p in parts)}</svg>"
    )
