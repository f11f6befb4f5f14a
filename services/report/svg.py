"""Inline SVG charts, drawn in Python: box plots, a time scatter and bar charts.

Each function returns one ``<svg>`` element as text, with a ``data-chart`` attribute naming the
chart and a ``<title>`` for screen readers. No scripts, no external resources.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#9D755D")
AXIS = "#6b7280"
GRID = "#e5e7eb"
TEXT = "#1f2937"
FONT = "font-family='system-ui, -apple-system, Segoe UI, sans-serif' font-size='12'"


def fmt(value: float) -> str:
    """A number for an SVG attribute (short, locale-free)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """0 .. a round number ≥ high, in round steps (1, 2, 2.5 or 5 × 10^k)."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    top = math.ceil(high / step - 1e-9) * step
    return [round(i * step, 6) for i in range(int(round(top / step)) + 1)]


def tick_label(value: float, unit: str = "") -> str:
    text = f"{value:g}" if value == int(value) or value < 10 else f"{value:.0f}"
    return f"{text}{unit}"


def _open(name: str, width: int, height: int, title: str) -> list[str]:
    return [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='chart' data-chart='{escape(name)}' "
        f"viewBox='0 0 {width} {height}' width='{width}' height='{height}' role='img' {FONT}>",
        f"<title>{escape(title)}</title>",
    ]


def empty_chart(name: str, title: str, width: int = 720, height: int = 80) -> str:
    parts = _open(name, width, height, title)
    parts.append(
        f"<text x='{width / 2}' y='{height / 2}' text-anchor='middle' fill='{AXIS}' "
        "class='no-data'>no data in this window</text></svg>"
    )
    return "".join(parts)


def _x_axis(
    parts: list[str], ticks: Sequence[float], x: Scale, top: float, bottom: float, unit: str
) -> None:
    for t in ticks:
        px = x(t)
        parts.append(
            f"<line x1='{fmt(px)}' x2='{fmt(px)}' y1='{fmt(top)}' y2='{fmt(bottom)}' "
            f"stroke='{GRID}'/>"
        )
        parts.append(
            f"<text x='{fmt(px)}' y='{fmt(bottom + 16)}' text-anchor='middle' fill='{AXIS}'>"
            f"{escape(tick_label(t, unit))}</text>"
        )


@dataclass(frozen=True)
class Scale:
    domain_low: float
    domain_high: float
    range_low: float
    range_high: float

    def __call__(self, value: float) -> float:
        span = self.domain_high - self.domain_low or 1.0
        share = (value - self.domain_low) / span
        return self.range_low + share * (self.range_high - self.range_low)


@dataclass(frozen=True)
class BoxRow:
    label: str
    count: int
    low: float
    q1: float
    median: float
    q3: float
    high: float
    mean: float
    p90: float


def box_plot(name: str, title: str, rows: Sequence[BoxRow], unit: str = "h") -> str:
    """Horizontal box plots: whiskers min–max, box p25–p75, a bar at p50, a diamond at the
    mean and a tick at p90; one row per label."""
    if not rows:
        return empty_chart(name, title)
    width, left, right, top, row_h = 760, 150, 70, 12, 36
    height = top + row_h * len(rows) + 34
    ticks = nice_ticks(max(r.high for r in rows))
    x = Scale(0, ticks[-1], left, width - right)
    parts = _open(name, width, height, title)
    bottom = top + row_h * len(rows)
    _x_axis(parts, ticks, x, top, bottom, unit)
    for i, r in enumerate(rows):
        cy = top + row_h * i + row_h / 2
        color = PALETTE[i % len(PALETTE)]
        parts.append(f"<g class='box' data-label='{escape(r.label)}'>")
        parts.append(
            f"<text x='{left - 10}' y='{fmt(cy + 4)}' text-anchor='end' fill='{TEXT}'>"
            f"{escape(r.label)}</text>"
        )
        parts.append(
            f"<line x1='{fmt(x(r.low))}' x2='{fmt(x(r.high))}' y1='{fmt(cy)}' y2='{fmt(cy)}' "
            f"stroke='{color}' stroke-width='1.5'/>"
        )
        for end in (r.low, r.high):
            parts.append(
                f"<line x1='{fmt(x(end))}' x2='{fmt(x(end))}' y1='{fmt(cy - 6)}' "
                f"y2='{fmt(cy + 6)}' stroke='{color}' stroke-width='1.5'/>"
            )
        box_w = max(x(r.q3) - x(r.q1), 2.0)
        parts.append(
            f"<rect x='{fmt(x(r.q1))}' y='{fmt(cy - 10)}' width='{fmt(box_w)}' height='20' "
            f"fill='{color}' fill-opacity='0.35' stroke='{color}' rx='2'/>"
        )
        parts.append(
            f"<line x1='{fmt(x(r.median))}' x2='{fmt(x(r.median))}' y1='{fmt(cy - 10)}' "
            f"y2='{fmt(cy + 10)}' stroke='{TEXT}' stroke-width='2.5'/>"
        )
        parts.append(
            f"<line x1='{fmt(x(r.p90))}' x2='{fmt(x(r.p90))}' y1='{fmt(cy - 13)}' "
            f"y2='{fmt(cy - 7)}' stroke='{TEXT}' stroke-width='1.5'/>"
        )
        mx = x(r.mean)
        parts.append(
            f"<path d='M{fmt(mx)} {fmt(cy - 4)} L{fmt(mx + 4)} {fmt(cy)} L{fmt(mx)} {fmt(cy + 4)} "
            f"L{fmt(mx - 4)} {fmt(cy)} Z' fill='white' stroke='{TEXT}'/>"
        )
        parts.append(
            f"<text x='{width - right + 8}' y='{fmt(cy + 4)}' fill='{AXIS}'>n={r.count}</text>"
        )
        parts.append(
            f"<title>{escape(r.label)}: p50 {r.median:g}{unit}, p90 {r.p90:g}{unit}, "
            f"mean {r.mean:g}{unit}, min {r.low:g}{unit}, max {r.high:g}{unit}, n={r.count}"
            "</title></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Point:
    series: str
    at: datetime
    value: float
    flagged: bool = False  # drawn with a dark ring (an SLA breach)
    label: str = ""


def time_scatter(
    name: str, title: str, points: Sequence[Point], series: Sequence[str], unit: str = "h"
) -> str:
    """Values over time, one colour per series; flagged points get a dark ring."""
    if not points:
        return empty_chart(name, title)
    width, height, left, right, top, bottom = 760, 320, 56, 20, 34, 40
    first = min(p.at for p in points)
    last = max(p.at for p in points)
    if last - first < timedelta(hours=1):
        first, last = first - timedelta(hours=12), last + timedelta(hours=12)
    ticks = nice_ticks(max(p.value for p in points))
    y = Scale(0, ticks[-1], height - bottom, top)
    # inset so the first and last date labels fit under their points
    x = Scale(first.timestamp(), last.timestamp(), left + 40, width - right - 40)
    parts = _open(name, width, height, title)
    for t in ticks:
        py = y(t)
        parts.append(
            f"<line x1='{left}' x2='{width - right}' y1='{fmt(py)}' y2='{fmt(py)}' "
            f"stroke='{GRID}'/>"
        )
        parts.append(
            f"<text x='{left - 6}' y='{fmt(py + 4)}' text-anchor='end' fill='{AXIS}'>"
            f"{escape(tick_label(t, unit))}</text>"
        )
    span = last - first
    for i in range(5):
        at = first + span * (i / 4)
        parts.append(
            f"<text x='{fmt(x(at.timestamp()))}' y='{height - bottom + 18}' text-anchor='middle' "
            f"fill='{AXIS}'>{at.strftime('%Y-%m-%d')}</text>"
        )
    colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}
    lx = left
    for s in series:
        parts.append(
            f"<circle cx='{lx + 6}' cy='14' r='5' fill='{colors[s]}'/>"
            f"<text x='{lx + 15}' y='18' fill='{TEXT}'>{escape(s)}</text>"
        )
        lx += 24 + 7 * len(s)
    parts.append(
        f"<circle cx='{lx + 6}' cy='14' r='5' fill='white' stroke='{TEXT}' stroke-width='2'/>"
        f"<text x='{lx + 15}' y='18' fill='{TEXT}'>SLA breached</text>"
    )
    for p in sorted(points, key=lambda p: p.at):
        ring = f" stroke='{TEXT}' stroke-width='2'" if p.flagged else " stroke='white'"
        parts.append(
            f"<circle class='point' cx='{fmt(x(p.at.timestamp()))}' cy='{fmt(y(p.value))}' r='5' "
            f"fill='{colors.get(p.series, AXIS)}' fill-opacity='0.85'{ring}>"
            f"<title>{escape(p.label or p.series)}: {p.value:g}{unit}</title></circle>"
        )
    parts.append(
        f"<line x1='{left}' x2='{width - right}' y1='{height - bottom}' y2='{height - bottom}' "
        f"stroke='{AXIS}'/></svg>"
    )
    return "".join(parts)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    text: str  # the value as shown above the bar


def bar_chart(
    name: str,
    title: str,
    bars: Sequence[Bar],
    *,
    unit: str = "",
    high: float | None = None,
    width: int = 360,
    color: str = PALETTE[0],
) -> str:
    """Vertical bars with their value written above; ``None`` values show as "n/a"."""
    if not bars:
        return empty_chart(name, title, width=width)
    height, left, right, top, bottom = 240, 44, 12, 16, 36
    ticks = nice_ticks(high if high is not None else max((b.value or 0) for b in bars) or 1)
    y = Scale(0, ticks[-1], height - bottom, top)
    slot = (width - left - right) / len(bars)
    parts = _open(name, width, height, title)
    for t in ticks:
        py = y(t)
        parts.append(
            f"<line x1='{left}' x2='{width - right}' y1='{fmt(py)}' y2='{fmt(py)}' "
            f"stroke='{GRID}'/><text x='{left - 6}' y='{fmt(py + 4)}' text-anchor='end' "
            f"fill='{AXIS}'>{escape(tick_label(t, unit))}</text>"
        )
    for i, b in enumerate(bars):
        cx = left + slot * i + slot / 2
        bw = min(56.0, slot * 0.6)
        parts.append(f"<g class='bar' data-label='{escape(b.label)}'>")
        if b.value is not None:
            top_y = y(b.value)
            parts.append(
                f"<rect x='{fmt(cx - bw / 2)}' y='{fmt(top_y)}' width='{fmt(bw)}' "
                f"height='{fmt(max(height - bottom - top_y, 1.0))}' fill='{color}' rx='2'/>"
            )
            label_y = top_y - 5
        else:
            label_y = height - bottom - 5
        parts.append(
            f"<text x='{fmt(cx)}' y='{fmt(label_y)}' text-anchor='middle' fill='{TEXT}'>"
            f"{escape(b.text)}</text>"
            f"<text x='{fmt(cx)}' y='{height - bottom + 18}' text-anchor='middle' "
            f"fill='{TEXT}'>{escape(b.label)}</text></g>"
        )
    parts.append(
        f"<line x1='{left}' x2='{width - right}' y1='{height - bottom}' y2='{height - bottom}' "
        f"stroke='{AXIS}'/></svg>"
    )
    return "".join(parts)


def paired_bars(
    name: str,
    title: str,
    rows: Sequence[tuple[str, float | None, float | None]],
    names: tuple[str, str],
    unit: str = "h",
) -> str:
    """Horizontal pairs of bars per label (e.g. p50 and p90 of a gate's wait)."""
    if not rows:
        return empty_chart(name, title)
    width, left, right, top, row_h = 760, 150, 70, 30, 40
    height = top + row_h * len(rows) + 30
    ticks = nice_ticks(max(max(a or 0, b or 0) for _, a, b in rows) or 1)
    x = Scale(0, ticks[-1], left, width - right)
    parts = _open(name, width, height, title)
    bottom = top + row_h * len(rows)
    _x_axis(parts, ticks, x, top, bottom, unit)
    shades = (PALETTE[0], "#9ecae9")
    for j, series in enumerate(names):
        parts.append(
            f"<rect x='{left + 110 * j}' y='6' width='12' height='12' fill='{shades[j]}'/>"
            f"<text x='{left + 110 * j + 17}' y='16' fill='{TEXT}'>{escape(series)}</text>"
        )
    for i, (label, first, second) in enumerate(rows):
        y0 = top + row_h * i + 6
        parts.append(
            f"<g class='bar' data-label='{escape(label)}'><text x='{left - 10}' "
            f"y='{fmt(y0 + 17)}' text-anchor='end' fill='{TEXT}'>{escape(label)}</text>"
        )
        for j, value in enumerate((first, second)):
            if value is None:
                continue
            parts.append(
                f"<rect x='{left}' y='{fmt(y0 + 14 * j)}' width='{fmt(max(x(value) - left, 1))}' "
                f"height='12' fill='{shades[j]}' rx='2'><title>{escape(label)} "
                f"{escape(names[j])}: {value:g}{unit}</title></rect>"
                f"<text x='{fmt(x(value) + 4)}' y='{fmt(y0 + 14 * j + 10)}' fill='{AXIS}' "
                f"font-size='10'>{value:g}{unit}</text>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
