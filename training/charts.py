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


def _fmt_pair(lo: float, hi: float) -> tuple[str, str]:
    """The two axis labels, with as many digits as it takes for them to differ (up to 6)."""
    a, b = _fmt(lo), _fmt(hi)
    for digits in range(4, 7):
        if a != b:
            break
        a, b = f"{lo:.{digits}g}", f"{hi:.{digits}g}"
    return a, b


def line_chart(title: str, points: list[tuple[int, float | None]]) -> SafeString:
    """The finite points as a line (a one-point series as a dot); the axes name distinct ends."""
    finite = [(x, y) for x, y in points if y is not None and math.isfinite(y)]
    head = f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
    if not finite:
        return mark_safe(head + '<p class="muted">no data yet</p></figure>')
    xs, ys = [p[0] for p in finite], [p[1] for p in finite]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    one_step = x1 == x0
    if one_step:  # one step: the point in the middle, the axis names it once
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        pad = abs(y0) * 0.1 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    sx = lambda x: PAD_L + (x - x0) / (x1 - x0) * (W - PAD_L - PAD_R)  # noqa: E731
    sy = lambda y: PAD_T + (1 - (y - y0) / (y1 - y0)) * (H - PAD_T - PAD_B)  # noqa: E731
    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in finite)
    # A polyline of one point draws nothing: a lone point (or the last one) gets a dot.
    dot = f'<circle cx="{sx(finite[-1][0]):.1f}" cy="{sy(finite[-1][1]):.1f}" r="2.5" class="dot"/>'
    last = finite[-1][1]
    y_lo, y_hi = _fmt_pair(y0, y1)
    x_ticks = (f'<text x="{sx(xs[0]):.1f}" y="{H - 4}" text-anchor="middle" class="tick">step {xs[0]}</text>'
               if one_step else
               f'<text x="{PAD_L}" y="{H - 4}" class="tick">{x0}</text>'
               f'<text x="{W - PAD_R}" y="{H - 4}" text-anchor="end" class="tick">step {x1}</text>')
    svg = (
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}: last value {_fmt(last)}" class="chart-svg">'
        f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" class="axis"/>'
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" class="axis"/>'
        f'<text x="{PAD_L - 4}" y="{PAD_T + 4}" text-anchor="end" class="tick">{y_hi}</text>'
        f'<text x="{PAD_L - 4}" y="{H - PAD_B}" text-anchor="end" class="tick">{y_lo}</text>'
        f'{x_ticks}<polyline points="{path}" class="series"/>{dot}</svg>'
    )
    return mark_safe(head + svg + f'<div class="chart-last">last {_fmt(last)}</div></figure>')  # noqa: S308 - numbers and escaped text only


def sweep_chart_png(points) -> bytes:
    """An over-optimisation sweep as a PNG (training/selectors/sweep.py's points): the labelers' win rate
    against the base (Wilson 95% bars, left axis) and the reward model's score (right axis) against √KL.
    matplotlib is imported here, when a chart is asked for, never at a web process's start."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = sorted((p for p in points if p.sqrt_kl is not None), key=lambda p: p.sqrt_kl)
    fig, left = plt.subplots(figsize=(6, 3.6))
    right = left.twinx()
    rated = [p for p in measured if p.rate is not None]
    if rated:
        xs = [p.sqrt_kl for p in rated]
        rates = [p.rate for p in rated]
        bars = [[p.rate - p.interval[0] for p in rated], [p.interval[1] - p.rate for p in rated]]
        left.errorbar(xs, rates, yerr=bars, marker="o", color="tab:blue", capsize=3, label="labelers' win rate vs base")
    left.axhline(0.5, color="tab:blue", linestyle=":", linewidth=1)
    scored = [p for p in measured if p.score is not None]
    if scored:
        right.plot([p.sqrt_kl for p in scored], [p.score for p in scored], marker="s", color="tab:orange",
                   label="reward model score")
    for p in measured:
        left.annotate(f"β={p.beta:g}", (p.sqrt_kl, 0.02), fontsize=7, ha="center", color="grey")
    left.set_ylim(0, 1)
    left.set_xlabel("√KL from the base (√nats per response)")
    left.set_ylabel("win rate vs base", color="tab:blue")
    right.set_ylabel("reward model score", color="tab:orange")
    left.set_title("Over-optimisation: people vs the reward model" if measured else "no PPO metrics yet")
    handles = [h for ax in (left, right) for h in ax.get_legend_handles_labels()[0]]
    if handles:
        left.legend(handles=handles, fontsize=7, loc="upper left")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return out.getvalue()
