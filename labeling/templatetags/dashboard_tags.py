"""Number formatting for the dashboards: rates with Wilson intervals, p-values, seconds."""
from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def pct(value) -> str:
    """0.734 → "73.4%"; None → "–"."""
    return "–" if value is None else f"{value * 100:.1f}%"


@register.filter
def rate_ci(rate) -> str:
    """A metrics.Rate as "73.4% (70.1–76.5%)", or "–" without data."""
    if rate is None or rate.value is None:
        return "–"
    return f"{rate.value * 100:.1f}% ({rate.low * 100:.1f}–{rate.high * 100:.1f}%)"


@register.filter
def pvalue(value) -> str:
    if value is None:
        return "–"
    if value < 1e-4:
        return f"{value:.0e}"
    return f"{value:.4f}"


@register.filter
def num(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:.{int(digits)}f}"


@register.filter
def flagged(test, alpha) -> bool:
    return test.flagged(alpha)
