"""A small line chart as a standalone SVG file: no plotting library, no display."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 190, 64, 56
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"


@dataclass(frozen=True)
class Series:
    """One line of the chart: a label, a colour, a dash pattern and its y values."""

    label: str
    colour: str
    values: tuple[float, ...]
    dash: str = ""


def nice_ceiling(value: float) -> float:
    """Return the first round step (1, 1.5, 2 … 8 × 10^n) at or above value."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10)
                if step * power >= value)


def line_chart(title: str, subtitle: str, x_label: str, y_label: str,
               x_ticks: list[str], series: list[Series]) -> str:
    """Return an SVG document plotting every series over categorical x ticks."""
    y_max = nice_ceiling(max(v for s in series for v in s.values))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + plot_w * (i + 0.5) / len(x_ticks)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / y_max)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' "
             f"height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}' {FONT}>",
             f"<rect width='{WIDTH}' height='{HEIGHT}' fill='white'/>",
             _text(LEFT, 26, title, 16, "start", "bold"),
             _text(LEFT, 46, subtitle, 11, "start", fill="#555")]
    for k in range(6):
        parts += _grid_line(y_max * k / 5, y(y_max * k / 5), plot_w)
    parts += [_text(x(i), TOP + plot_h + 20, t, 11) for i, t in enumerate(x_ticks)]
    parts += _axis_labels(x_label, y_label, plot_w, plot_h)
    for index, line in enumerate(series):
        parts += _series(line, [(x(i), y(v)) for i, v in enumerate(line.values)])
        parts += _legend(line, LEFT + plot_w + 20, TOP + 10 + 22 * index)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _grid_line(value: float, at_y: float, plot_w: float) -> list[str]:
    return [f"<line x1='{LEFT}' x2='{LEFT + plot_w}' y1='{at_y:.1f}' "
            f"y2='{at_y:.1f}' stroke='#ddd'/>",
            _text(LEFT - 8, at_y + 4, f"{value:g}", 11, "end")]


def _axis_labels(x_label: str, y_label: str, plot_w: float,
                 plot_h: float) -> list[str]:
    middle = TOP + plot_h / 2
    return [_text(LEFT + plot_w / 2, HEIGHT - 12, x_label, 12),
            f"<text x='18' y='{middle}' font-size='12' text-anchor='middle' "
            f"transform='rotate(-90 18 {middle})'>{escape(y_label)}</text>"]


def _series(line: Series, points: list[tuple[float, float]]) -> list[str]:
    path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    dash = f" stroke-dasharray='{line.dash}'" if line.dash else ""
    dots = [f"<circle cx='{px:.1f}' cy='{py:.1f}' r='3' fill='{line.colour}'/>"
            for px, py in points]
    return [f"<polyline points='{path}' fill='none' stroke='{line.colour}' "
            f"stroke-width='2'{dash}/>", *dots]


def _legend(line: Series, left: float, top: float) -> list[str]:
    dash = f" stroke-dasharray='{line.dash}'" if line.dash else ""
    return [f"<line x1='{left}' x2='{left + 24}' y1='{top}' y2='{top}' "
            f"stroke='{line.colour}' stroke-width='2'{dash}/>",
            _text(left + 30, top + 4, line.label, 11, "start")]


def _text(x: float, y: float, text: str, size: int, anchor: str = "middle",
          weight: str = "normal", fill: str = "#222") -> str:
    return (f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' "
            f"font-weight='{weight}' fill='{fill}'>{escape(text)}</text>")
