"""Server-side SVG charts of the dashboards (sibling of training/charts.py; no JavaScript, CSP-safe).

Only numbers we computed go into the markup, and every label is escaped, so the result is safe.
"""
from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 480, 140, 36, 8, 14, 20


def _figure(title: str, svg: str, caption: str = "") -> SafeString:
    tail = f'<div class="chart-last">{escape(caption)}</div>' if caption else ""
    return mark_safe(f'<figure class="chart"><figcaption>{escape(title)}</figcaption>{svg}{tail}</figure>')  # noqa: S308


def _empty(title: str) -> SafeString:
    return mark_safe(f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'  # noqa: S308
                     '<p class="muted">no data yet</p></figure>')


def _x_labels(first: str, last: str, middle: float) -> str:
    """The x axis's first and last labels; a one-point series (one label) names it once, under its point."""
    if first == last:
        return f'<text x="{middle:.1f}" y="{H - 5}" text-anchor="middle" class="tick">{escape(first)}</text>'
    return (f'<text x="{PAD_L}" y="{H - 5}" class="tick">{escape(first)}</text>'
            f'<text x="{W - PAD_R}" y="{H - 5}" text-anchor="end" class="tick">{escape(last)}</text>')


def bar_chart(title: str, points: list[tuple[str, int]]) -> SafeString:
    """Bars of counts (e.g. labels per day); x labels at the first and last bar."""
    if not points:
        return _empty(title)
    top = max(v for _, v in points) or 1
    inner_w, inner_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    step = inner_w / len(points)
    bars = []
    for i, (label, value) in enumerate(points):
        h = value / top * inner_h
        bars.append(
            f'<rect x="{PAD_L + i * step + step * 0.1:.1f}" y="{PAD_T + inner_h - h:.1f}" '
            f'width="{max(step * 0.8, 0.5):.1f}" height="{h:.1f}" class="bar"><title>{escape(label)}: {value}</title></rect>'
        )
    total = sum(v for _, v in points)
    svg = (
        f'<svg viewBox="0 0 {W} {H}" role="img" class="chart-svg" '
        f'aria-label="{escape(title)}: {total} in {len(points)} days, at most {top} a day">'
        f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" class="axis"/>'
        f'<text x="{PAD_L - 4}" y="{PAD_T + 4}" text-anchor="end" class="tick">{top}</text>'
        f'<text x="{PAD_L - 4}" y="{H - PAD_B}" text-anchor="end" class="tick">0</text>'
        + _x_labels(points[0][0], points[-1][0], PAD_L + step / 2) + "".join(bars) + "</svg>"
    )
    return _figure(title, svg, f"total {total}")


def rate_chart(title: str, points: list[tuple[str, float | None, float | None, float | None]],
               chance: float) -> SafeString:
    """A rate in [0, 1] over time: line through the values, Wilson interval whiskers, dashed chance line."""
    shown = [(label, v, lo, hi) for label, v, lo, hi in points if v is not None]
    if not shown:
        return _empty(title)
    inner_w, inner_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    sx = (lambda i: PAD_L + inner_w / 2) if len(shown) == 1 else (lambda i: PAD_L + i / (len(shown) - 1) * inner_w)  # noqa: E731
    sy = lambda y: PAD_T + (1 - y) * inner_h  # noqa: E731
    whiskers = "".join(
        f'<line x1="{sx(i):.1f}" y1="{sy(hi):.1f}" x2="{sx(i):.1f}" y2="{sy(lo):.1f}" class="interval">'
        f'<title>{escape(label)}: {v:.0%} ({lo:.0%}–{hi:.0%})</title></line>'
        for i, (label, v, lo, hi) in enumerate(shown)
    )
    dots = "".join(f'<circle cx="{sx(i):.1f}" cy="{sy(v):.1f}" r="2.5" class="dot"/>' for i, (_, v, _, _) in enumerate(shown))
    path = " ".join(f"{sx(i):.1f},{sy(v):.1f}" for i, (_, v, _, _) in enumerate(shown))
    last = shown[-1]
    svg = (
        f'<svg viewBox="0 0 {W} {H}" role="img" class="chart-svg" '
        f'aria-label="{escape(title)}: last {last[1]:.0%}, chance {chance:.0%}">'
        f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" class="axis"/>'
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" class="axis"/>'
        f'<text x="{PAD_L - 4}" y="{PAD_T + 4}" text-anchor="end" class="tick">100%</text>'
        f'<text x="{PAD_L - 4}" y="{H - PAD_B}" text-anchor="end" class="tick">0%</text>'
        f'<line x1="{PAD_L}" y1="{sy(chance):.1f}" x2="{W - PAD_R}" y2="{sy(chance):.1f}" class="chance"/>'
        f'<text x="{W - PAD_R}" y="{sy(chance) - 3:.1f}" text-anchor="end" class="tick">chance {chance:.0%}</text>'
        + _x_labels(shown[0][0], last[0], sx(0)) + f'{whiskers}<polyline points="{path}" class="series"/>{dots}</svg>'
    )
    return _figure(title, svg, f"last {last[1]:.0%} ({last[2]:.0%}–{last[3]:.0%}) · chance {chance:.0%}")
