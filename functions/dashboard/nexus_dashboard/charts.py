"""Charts as static SVG, drawn on the server: readable without script, printable, CSP-clean.

Each bar and point carries a ``<title>`` with its exact numbers; the page shows the table (and the
CSV) behind every chart, so the picture never has to be read to the pixel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

W, H, PAD_L, PAD_B, PAD_T = 1200, 200, 64, 22, 8
PALETTE = 8  # series colours are CSS classes s0..s7 (light and dark themes)


def _nice_max(v: float) -> float:
    """The axis top: the next 1, 2, 2.5 or 5 times a power of ten at or above ``v``."""
    if v <= 0:
        return 1.0
    mag: float = 10 ** math.floor(math.log10(v))  # an int when v >= 1: the axis reads 100, not 100.0
    return next(step * mag for step in (1, 2, 2.5, 5, 10) if v <= step * mag * (1 + 1e-9))


def _label(at: datetime | str, bucket: str) -> str:
    if isinstance(at, str):
        return at
    return at.strftime("%H:%M" if bucket == "hour" else "%b %d")


def stacked_bars(
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    names: Sequence[str] | None = None,
    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
    bucket: str = "day",
    title: str,
) -> Markup:
    """One bar per row (``row['at']``), stacked by ``keys`` (the row's numbers to draw, by name)."""
    names = names or keys
    if not rows:
        return Markup('<p class="empty">No data for this period.</p>')
    totals = [sum(float(r.get(k) or 0) for k in keys) for r in rows]
    top = _nice_max(max(totals))
    plot_w, plot_h = W - PAD_L, H - PAD_B - PAD_T
    slot = plot_w / len(rows)
    bar_w = max(slot * 0.8, 1.0)
    out = [
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text class="axis" x="{PAD_L - 6}" y="{PAD_T + 8}" text-anchor="end">{escape(fmt(top))}</text>',
        f'<text class="axis" x="{PAD_L - 6}" y="{H - PAD_B}" text-anchor="end">0</text>',
        f'<line class="grid" x1="{PAD_L}" y1="{PAD_T}" x2="{W}" y2="{PAD_T}"/>',
        f'<line class="grid" x1="{PAD_L}" y1="{H - PAD_B}" x2="{W}" y2="{H - PAD_B}"/>',
    ]
    every = max(1, round(len(rows) / 8))
    for i, r in enumerate(rows):
        x = PAD_L + i * slot + (slot - bar_w) / 2
        y: float = H - PAD_B
        label = _label(r["at"], bucket)
        for j, k in enumerate(keys):
            v = float(r.get(k) or 0)
            if v <= 0:
                continue
            h = v / top * plot_h
            y -= h
            out.append(
                f'<rect class="s{j % PALETTE}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
                f"<title>{escape(label)} · {escape(names[j])}: {escape(fmt(v))}</title></rect>"
            )
        if i % every == 0:
            out.append(
                f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{H - 6}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    out.append("</svg>")
    return Markup("".join(out))


def lines(
    series: dict[str, list[tuple[datetime, float]]],
    *,
    top: float = 1.0,
    fmt: Callable[[float], str] = lambda v: f"{v:.0%}",
    warn_at: float | None = None,
    title: str,
) -> Markup:
    """One polyline per series over a shared time axis (values 0..top)."""
    points = [t for pts in series.values() for t, _ in pts]
    if not points:
        return Markup('<p class="empty">No readings for this period.</p>')
    t0, t1 = min(points), max(points)
    span = (t1 - t0).total_seconds() or 1.0
    plot_w, plot_h = W - PAD_L, H - PAD_B - PAD_T

    def xy(t: datetime, v: float) -> tuple[float, float]:
        return PAD_L + (t - t0).total_seconds() / span * plot_w, H - PAD_B - min(v, top) / top * plot_h

    out = [
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text class="axis" x="{PAD_L - 6}" y="{PAD_T + 8}" text-anchor="end">{escape(fmt(top))}</text>',
        f'<text class="axis" x="{PAD_L - 6}" y="{H - PAD_B}" text-anchor="end">{escape(fmt(0))}</text>',
        f'<text class="axis" x="{PAD_L}" y="{H - 6}">{escape(t0.strftime("%b %d %H:%M"))}</text>',
        f'<text class="axis" x="{W}" y="{H - 6}" text-anchor="end">'
        f"{escape(t1.strftime('%b %d %H:%M'))}</text>",
        f'<line class="grid" x1="{PAD_L}" y1="{H - PAD_B}" x2="{W}" y2="{H - PAD_B}"/>',
    ]
    if warn_at is not None:
        _, wy = xy(t0, warn_at)
        out.append(f'<line class="warn" x1="{PAD_L}" y1="{wy:.1f}" x2="{W}" y2="{wy:.1f}"/>')
    for j, (name, pts) in enumerate(series.items()):
        xys = [(t, v, *xy(t, v)) for t, v in pts]
        coords = " ".join(f"{x:.1f},{y:.1f}" for _, _, x, y in xys)
        out.append(
            f'<polyline class="s{j % PALETTE}" points="{coords}"><title>{escape(name)}</title></polyline>'
        )
        # A dot per reading, so a single reading shows too, with its value on hover.
        out.extend(
            f'<circle class="s{j % PALETTE}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
            f"<title>{escape(name)} {t:%b %d %H:%M}: {escape(fmt(v))}</title></circle>"
            for t, v, x, y in xys
        )
    out.append("</svg>")
    return Markup("".join(out))


def legend(names: Sequence[str]) -> Markup:
    items = "".join(
        f'<li><span class="swatch s{j % PALETTE}"></span>{escape(n)}</li>' for j, n in enumerate(names)
    )
    return Markup(f'<ul class="legend">{items}</ul>')


def split_bar(parts: Sequence[tuple[str, float]], *, fmt: Callable[[float], str], title: str) -> Markup:
    """One horizontal bar split into named shares, labelled with value and percentage."""
    total = sum(v for _, v in parts)
    if total <= 0:
        return Markup("")
    out = [
        f'<svg class="split" viewBox="0 0 {W} 28" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    x = 0.0
    for j, (name, v) in enumerate(parts):
        w = v / total * W
        if w <= 0:
            continue
        label = f"{name} {fmt(v)} ({v / total:.0%})"
        out.append(
            f'<rect class="s{j % PALETTE}" x="{x:.1f}" y="0" width="{w:.1f}" height="28">'
            f"<title>{escape(label)}</title></rect>"
        )
        if w > 120:
            out.append(f'<text class="on-bar" x="{x + 6:.1f}" y="18">{escape(label)}</text>')
        x += w
    out.append("</svg>")
    return Markup("".join(out))
