"""Inline SVG charts for the report pages: line charts (training curves) and bar charts.

Series differ by dash pattern and marker shape as well as colour, and every
chart has a ``<title>`` and a text description (``role="img"``), so the page
reads without colour and with a screen reader.
"""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 460, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 24, 36
STYLES = (
    ("#1f5fa8", "", "circle"),
    ("#c0392b", "6 4", "square"),
    ("#2e7d32", "2 3", "diamond"),
    ("#6a1b9a", "8 3 2 3", "triangle"),
)


def _marker(shape, x, y, color):
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>'
    if shape == "square":
        return f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6" fill="{color}"/>'
    points = (
        f"{x:.1f},{y - 4:.1f} {x + 4:.1f},{y:.1f} {x:.1f},{y + 4:.1f} {x - 4:.1f},{y:.1f}"
        if shape == "diamond"
        else f"{x:.1f},{y - 4:.1f} {x + 4:.1f},{y + 3:.1f} {x - 4:.1f},{y + 3:.1f}"
    )
    return f'<polygon points="{points}" fill="{color}"/>'


def _frame(title, description, y_low, y_high, x_labels):
    """The opening of an SVG with its title, axes, y ticks and x labels."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'class="chart"><title>{escape(title)}</title><desc>{escape(description)}</desc>',
        f'<text x="{WIDTH / 2}" y="14" text-anchor="middle" class="chart-title">'
        f"{escape(title)}</text>",
    ]
    for k in range(5):
        value = y_low + (y_high - y_low) * k / 4
        y = _y(value, y_low, y_high)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{value:.3g}</text>'
        )
    for x, label in x_labels:
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">'
            f"{escape(str(label))}</text>"
        )
    return parts


def _y(value, low, high):
    span = (high - low) or 1.0
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - (value - low) / span)


def _x(i, n):
    return LEFT + (WIDTH - LEFT - RIGHT) * (i / max(n - 1, 1) if n > 1 else 0.5)


def line_chart(title, x_values, series, *, y_range=None):
    """An SVG line chart.

    Args:
        title: Its title (also its accessible name).
        x_values: The x values (epochs), shown as labels.
        series: ``{name: [y or None, ...]}``, each as long as ``x_values``.
        y_range: ``(low, high)``, or None for the data's range.

    Returns:
        The SVG text.
    """
    values = [v for ys in series.values() for v in ys if v is not None and math.isfinite(v)]
    low, high = y_range or (min(values, default=0.0), max(values, default=1.0))
    n = len(x_values)
    step = max(1, math.ceil(n / 10))
    labels = [(_x(i, n), x) for i, x in enumerate(x_values) if i % step == 0]
    summary = "; ".join(
        f"{name}: {ys[-1]:.3f} at the end"
        for name, ys in series.items()
        if ys and ys[-1] is not None
    )
    parts = _frame(title, summary, low, high, labels)
    for k, (name, ys) in enumerate(series.items()):
        color, dash, shape = STYLES[k % len(STYLES)]
        points = [(_x(i, n), _y(v, low, high)) for i, v in enumerate(ys) if v is not None]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2" '
            f'stroke-dasharray="{dash}"/>'
        )
        parts.extend(_marker(shape, x, y, color) for x, y in points)
        lx = LEFT + 8 + 120 * k
        parts.append(
            f'<line x1="{lx}" x2="{lx + 22}" y1="{HEIGHT - 8}" y2="{HEIGHT - 8}" stroke="{color}" '
            f'stroke-width="2" stroke-dasharray="{dash}"/>'
            + _marker(shape, lx + 11, HEIGHT - 8, color)
            + f'<text x="{lx + 26}" y="{HEIGHT - 4}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title, bars, *, reference=None, reference_label=""):
    """An SVG bar chart on [0, 1] with min-max whiskers and each value written above its bar.

    Args:
        title: Its title (also its accessible name).
        bars: ``[(name, value, low, high), ...]``.
        reference: A dashed horizontal reference line (e.g. the baseline), or None.
        reference_label: Its label.

    Returns:
        The SVG text.
    """
    n = len(bars)
    slot = (WIDTH - LEFT - RIGHT) / max(n, 1)
    centres = [LEFT + slot * (i + 0.5) for i in range(n)]
    description = "; ".join(f"{name}: {value:.3f}" for name, value, _, _ in bars)
    if reference is not None:
        description += f"; {reference_label}: {reference:.3f}"
    parts = _frame(
        title, description, 0.0, 1.0, [(x, b[0]) for x, b in zip(centres, bars, strict=True)]
    )
    for x, (_, value, low, high) in zip(centres, bars, strict=True):
        y = _y(value, 0.0, 1.0)
        width = min(48.0, slot * 0.6)
        parts.append(
            f'<rect x="{x - width / 2:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{_y(0, 0, 1) - y:.1f}" class="bar"/>'
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_y(low, 0, 1):.1f}" y2="{_y(high, 0, 1):.1f}" '
            f'class="whisker"/><text x="{x:.1f}" y="{y - 4:.1f}" text-anchor="middle">'
            f"{value:.3f}</text>"
        )
    if reference is not None:
        y = _y(reference, 0.0, 1.0)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="reference"/>'
            f'<text x="{WIDTH - RIGHT}" y="{y - 4:.1f}" text-anchor="end">'
            f"{escape(reference_label)} {reference:.3f}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
