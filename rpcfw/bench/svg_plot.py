"""Small inline SVG charts (no plotting library needed): a bar chart and a line chart."""

from __future__ import annotations

import html
from collections.abc import Sequence

__all__ = ["bar_chart", "line_chart"]

_W, _H = 640, 260  # drawing size
_L, _B, _T, _R = 56, 48, 12, 12  # margins: left, bottom, top, right


def _frame(x_label: str, y_label: str, peak: int, body: list[str]) -> str:
    x0, y0, x1, y1 = _L, _H - _B, _W - _R, _T
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" font-family="sans-serif" font-size="11">',
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#444"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#444"/>',
        f'<text x="{x0 - 6}" y="{y1 + 8}" text-anchor="end">{peak}</text>',
        f'<text x="{x0 - 6}" y="{y0}" text-anchor="end">0</text>',
        f'<text x="{(x0 + x1) / 2}" y="{_H - 6}" text-anchor="middle">'
        f"{html.escape(x_label)}</text>",
        f'<text x="14" y="{(y0 + y1) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(y0 + y1) / 2})">{html.escape(y_label)}</text>',
        *body,
        "</svg>",
    ]
    return "".join(parts)


def bar_chart(labels: Sequence[str], values: Sequence[int], x_label: str, y_label: str) -> str:
    """One bar per value, labelled below."""
    peak = max(values, default=0) or 1
    width = (_W - _L - _R) / max(len(values), 1)
    height = _H - _B - _T
    body = []
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        bar = height * value / peak
        x = _L + index * width
        body.append(
            f'<rect x="{x + 1:.1f}" y="{_H - _B - bar:.1f}" width="{max(width - 2, 1):.1f}" '
            f'height="{bar:.1f}" fill="#4a7bd0"><title>{html.escape(label)}: {value}</title></rect>'
        )
        body.append(
            f'<text x="{x + width / 2:.1f}" y="{_H - _B + 14}" text-anchor="middle">'
            f"{html.escape(label)}</text>"
        )
    return _frame(x_label, y_label, peak, body)


def line_chart(values: Sequence[int], x_label: str, y_label: str) -> str:
    """A polyline through ``values`` at x = 0, 1, 2, ..."""
    peak = max(values, default=0) or 1
    step = (_W - _L - _R) / max(len(values) - 1, 1)
    height = _H - _B - _T
    points = " ".join(
        f"{_L + index * step:.1f},{_H - _B - height * value / peak:.1f}"
        for index, value in enumerate(values)
    )
    body = [f'<polyline points="{points}" fill="none" stroke="#d0584a" stroke-width="2"/>']
    return _frame(x_label, y_label, peak, body)
