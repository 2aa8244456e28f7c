"""Small self-contained SVG charts for the HTML report: no plotting library, no scripts, fixed seeds.

``strip_chart(groups, ...)``, ``scatter_chart(series, ...)`` and ``bar_chart(groups, ...)`` each return one
``<svg>`` element with axes, tick labels, axis titles (with units) and a legend. Values that are None, nan
or infinite are left out of a chart and counted in its caption line by the caller.
"""

from __future__ import annotations

import html
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
WIDTH, HEIGHT = 640, 340
LEFT, RIGHT, TOP, BOTTOM = 70, 170, 20, 80


def finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    return [start + i * step for i in range(int(math.ceil((high - start) / step)) + 1)]


def _label(value: float) -> str:
    return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"


@dataclass
class _Axis:
    low: float
    high: float
    start: float
    length: float
    flip: bool = False

    @classmethod
    def fit(cls, values: Sequence[float], start: float, length: float, flip: bool = False,
            include_zero: bool = False) -> _Axis:
        data = list(values) + ([0.0] if include_zero else [])
        low, high = (min(data), max(data)) if data else (0.0, 1.0)
        pad = (high - low) * 0.08 or (abs(high) * 0.1 or 1.0)
        ticks = _ticks(low - pad, high + pad)
        return cls(ticks[0], ticks[-1], start, length, flip)

    def __call__(self, value: float) -> float:
        frac = (value - self.low) / (self.high - self.low)
        return self.start + (1 - frac if self.flip else frac) * self.length

    def ticks(self) -> list[float]:
        return [t for t in _ticks(self.low, self.high) if self.low - 1e-12 <= t <= self.high + 1e-12]


def _frame(title_x: str, title_y: str, y: _Axis, x: _Axis | None = None) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = [f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>']
    for t in y.ticks():
        py = y(t)
        out.append(f'<line x1="{LEFT - 4}" x2="{LEFT + plot_w}" y1="{py:.1f}" y2="{py:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end" font-size="11">{_label(t)}</text>')
    if x is not None:
        for t in x.ticks():
            px = x(t)
            out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{TOP + plot_h + 4}" stroke="#eee"/>')
            out.append(f'<text x="{px:.1f}" y="{TOP + plot_h + 17}" text-anchor="middle" font-size="11">'
                       f'{_label(t)}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="12">'
               f'{html.escape(title_x)}</text>')
    out.append(f'<text transform="translate(16 {TOP + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle" '
               f'font-size="12">{html.escape(title_y)}</text>')
    return out


def _legend(entries: Sequence[tuple[str, str, str]]) -> list[str]:
    """(colour, shape "dot"|"bar"|"line", text) entries at the right of the plot."""
    out, x0 = [], WIDTH - RIGHT + 12
    for i, (colour, shape, text) in enumerate(entries):
        y = TOP + 8 + 18 * i
        if shape == "dot":
            out.append(f'<circle cx="{x0 + 5}" cy="{y}" r="4" fill="{colour}" fill-opacity="0.75"/>')
        elif shape == "line":
            out.append(f'<line x1="{x0}" x2="{x0 + 10}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="2"/>')
        else:
            out.append(f'<rect x="{x0}" y="{y - 5}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x0 + 16}" y="{y + 4}" font-size="11">{html.escape(text[:24])}</text>')
    return out


def _svg(parts: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(label)}">'
            + "".join(parts) + "</svg>")


def strip_chart(groups: Sequence[tuple[str, Sequence[float], tuple[float, float, float] | None]], title_y: str,
                title_x: str = "instruction") -> str:
    """Per group: every value as a jittered dot and (mean, low, high) as a bar with whiskers; a zero line."""
    values = [v for _, vs, _ in groups for v in vs] + [v for *_, s in groups if s for v in s]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    y = _Axis.fit(values, TOP, plot_h, flip=True, include_zero=True)
    parts = _frame(title_x, title_y, y)
    parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#888" '
                 'stroke-dasharray="4 3"/>')
    rng = random.Random(0)
    slot = plot_w / max(1, len(groups))
    for i, (name, vs, stats) in enumerate(groups):
        cx = LEFT + slot * (i + 0.5)
        for v in vs:
            parts.append(f'<circle cx="{cx - 12 + rng.uniform(-8, 8):.1f}" cy="{y(v):.1f}" r="3.5" '
                         f'fill="{PALETTE[0]}" fill-opacity="0.7"><title>{_label(v)}</title></circle>')
        if stats:
            mean, low, high = stats
            parts.append(f'<line x1="{cx + 12}" x2="{cx + 12}" y1="{y(low):.1f}" y2="{y(high):.1f}" '
                         f'stroke="{PALETTE[3]}" stroke-width="2"/>')
            for edge in (low, high):
                parts.append(f'<line x1="{cx + 7}" x2="{cx + 17}" y1="{y(edge):.1f}" y2="{y(edge):.1f}" '
                             f'stroke="{PALETTE[3]}" stroke-width="2"/>')
            parts.append(f'<rect x="{cx + 9}" y="{y(mean) - 3:.1f}" width="6" height="6" fill="{PALETTE[3]}"/>')
        parts.append(f'<text transform="translate({cx:.1f} {TOP + plot_h + 14}) rotate(20)" font-size="10">'
                     f'{html.escape(name[:26])}</text>')
    parts += _legend([(PALETTE[0], "dot", "one clip"), (PALETTE[3], "line", "mean, 95% CI")])
    return _svg(parts, title_y)


def scatter_chart(series: Sequence[tuple[str, Sequence[tuple[float, float]]]], title_x: str, title_y: str) -> str:
    """One colour per series (legend), a dot per (x, y) point."""
    xs = [p[0] for _, pts in series for p in pts]
    ys = [p[1] for _, pts in series for p in pts]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    x = _Axis.fit(xs, LEFT, plot_w)
    y = _Axis.fit(ys, TOP, plot_h, flip=True)
    parts = _frame(title_x, title_y, y, x)
    legend = []
    for i, (name, pts) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        legend.append((colour, "dot", name))
        for px, py in pts:
            parts.append(f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="4" fill="{colour}" fill-opacity="0.75">'
                         f'<title>{html.escape(name)}: {_label(px)}, {_label(py)}</title></circle>')
    parts += _legend(legend)
    return _svg(parts, f"{title_y} against {title_x}")


def bar_chart(groups: Sequence[tuple[str, Sequence[float | None]]], series: Sequence[str], title_y: str,
              title_x: str = "instruction", y_range: tuple[float, float] | None = None) -> str:
    """Grouped bars: per group one bar per series (None: no bar); ``y_range`` fixes the axis (e.g. 0-100 %)."""
    values = [v for _, vs in groups for v in vs if v is not None]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    y = (_Axis(y_range[0], y_range[1], TOP, plot_h, flip=True) if y_range
         else _Axis.fit(values + [0.0], TOP, plot_h, flip=True, include_zero=True))
    parts = _frame(title_x, title_y, y)
    slot = plot_w / max(1, len(groups))
    width = slot * 0.7 / max(1, len(series))
    for i, (name, vs) in enumerate(groups):
        left = LEFT + slot * i + slot * 0.15
        for k, v in enumerate(vs):
            if v is None:
                continue
            top, base = y(max(v, 0.0)), y(min(v, 0.0))
            parts.append(f'<rect x="{left + k * width:.1f}" y="{top:.1f}" width="{width - 2:.1f}" '
                         f'height="{max(0.5, base - top):.1f}" fill="{PALETTE[k % len(PALETTE)]}">'
                         f'<title>{html.escape(series[k])}: {_label(v)}</title></rect>')
        parts.append(f'<text transform="translate({LEFT + slot * (i + 0.5):.1f} {TOP + plot_h + 14}) rotate(20)" '
                     f'font-size="10">{html.escape(name[:26])}</text>')
    parts += _legend([(PALETTE[k % len(PALETTE)], "bar", s) for k, s in enumerate(series)])
    return _svg(parts, title_y)
