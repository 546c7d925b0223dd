"""The class-defining shapes of the built-in dataset, drawn with PIL.

Every shape is symmetric about its vertical axis, so a horizontal flip never changes its class.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from PIL import ImageDraw

Fill = tuple[int, int, int] | int
Draw = Callable[[ImageDraw.ImageDraw, float, float, float, Fill], None]


def _polygon(cx: float, cy: float, r: float, n: int, phase: float) -> list[tuple[float, float]]:
    """Vertices of a regular n-gon of circumradius r, the first at angle `phase` (radians)."""
    return [
        (
            cx + r * math.cos(phase + 2 * math.pi * k / n),
            cy + r * math.sin(phase + 2 * math.pi * k / n),
        )
        for k in range(n)
    ]


def _circle(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: Fill) -> None:
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)


def _square(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: Fill) -> None:
    s = r * 0.8
    d.rectangle((cx - s, cy - s, cx + s, cy + s), fill=fill)


def _triangle(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: Fill) -> None:
    d.polygon(_polygon(cx, cy + r * 0.2, r * 1.1, 3, -math.pi / 2), fill=fill)


def _plus(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: Fill) -> None:
    t = r * 0.3
    d.rectangle((cx - r, cy - t, cx + r, cy + t), fill=fill)
    d.rectangle((cx - t, cy - r, cx + t, cy + r), fill=fill)


def _star(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: Fill) -> None:
    outer = _polygon(cx, cy, r * 1.1, 5, -math.pi / 2)
    inner = _polygon(cx, cy, r * 0.45, 5, -math.pi / 2 + math.pi / 5)
    d.polygon([p for pair in zip(outer, inner, strict=True) for p in pair], fill=fill)


def _ring(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: Fill) -> None:
    d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=fill, width=max(2, round(r * 0.35)))


def _diamond(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: Fill) -> None:
    d.polygon(_polygon(cx, cy, r * 1.1, 4, -math.pi / 2), fill=fill)


def _cross(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: Fill) -> None:
    a, w = r * 0.75, max(2, round(r * 0.45))
    d.line((cx - a, cy - a, cx + a, cy + a), fill=fill, width=w)
    d.line((cx - a, cy + a, cx + a, cy - a), fill=fill, width=w)


def _frame(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: Fill) -> None:
    s = r * 0.85
    d.rectangle((cx - s, cy - s, cx + s, cy + s), outline=fill, width=max(2, round(r * 0.3)))


def _hexagon(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, fill: Fill) -> None:
    d.polygon(_polygon(cx, cy, r, 6, 0.0), fill=fill)


SHAPES: dict[str, Draw] = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "plus": _plus,
    "star": _star,
    "ring": _ring,
    "diamond": _diamond,
    "cross": _cross,
    "frame": _frame,
    "hexagon": _hexagon,
}
"""Shape name -> drawing function `(draw, cx, cy, radius, fill)`, most distinct first."""
