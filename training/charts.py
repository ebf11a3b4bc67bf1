"""Server-side SVG line charts (no JavaScript library, nothing from a CDN; CSP-safe).

Only numbers we computed go into the markup, and labels are escaped, so the result is safe.
"""
from __future__ import annotations

import math

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 320, 120, 58, 8, 18, 18


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.2e}"
    return f"{v:.3g}"


def line_chart(title: str, points: list[tuple[int, float | None]]) -> SafeString:
    finite = [(x, y) for x, y in points if y is not None and math.isfinite(y)]
    head = f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
    if not finite:
        return mark_safe(head + '<p class="muted">no data yet</p></figure>')
    xs, ys = [p[0] for p in finite], [p[1] for p in finite]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    sx = lambda x: PAD_L + (x - x0) / (x1 - x0) * (W - PAD_L - PAD_R)  # noqa: E731
    sy = lambda y: PAD_T + (1 - (y - y0) / (y1 - y0)) * (H - PAD_T - PAD_B)  # noqa: E731
    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in finite)
    last = finite[-1][1]
    svg = (
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}: last value {_fmt(last)}" class="chart-svg">'
        f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" class="axis"/>'
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" class="axis"/>'
        f'<text x="{PAD_L - 4}" y="{PAD_T + 4}" text-anchor="end" class="tick">{_fmt(y1)}</text>'
        f'<text x="{PAD_L - 4}" y="{H - PAD_B}" text-anchor="end" class="tick">{_fmt(y0)}</text>'
        f'<text x="{PAD_L}" y="{H - 4}" class="tick">{x0}</text>'
        f'<text x="{W - PAD_R}" y="{H - 4}" text-anchor="end" class="tick">step {x1}</text>'
        f'<polyline points="{path}" class="series"/></svg>'
    )
    return mark_safe(head + svg + f'<div class="chart-last">last {_fmt(last)}</div></figure>')  # noqa: S308 - numbers and escaped text only
