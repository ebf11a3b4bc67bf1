"""The dashboards' SVG charts draw a one-point series and never print the same axis label twice."""
import re

from labeling.charts import bar_chart, rate_chart


def _ticks(svg: str) -> list[str]:
    return re.findall(r'class="tick">([^<]*)</text>', svg)


def test_bar_chart_of_one_day_draws_its_bar_and_names_the_day_once():
    svg = str(bar_chart("labels per day", [("2026-03-01", 7)]))
    assert svg.count("<rect") == 1 and 'height="0.0"' not in svg
    assert _ticks(svg).count("2026-03-01") == 1


def test_bar_chart_of_two_days_names_first_and_last():
    svg = str(bar_chart("labels per day", [("2026-03-01", 7), ("2026-03-02", 3)]))
    assert {"2026-03-01", "2026-03-02"} <= set(_ticks(svg))


def test_rate_chart_of_one_week_draws_its_dot_and_names_the_week_once():
    svg = str(rate_chart("agreement", [("2026-W09", 0.7, 0.5, 0.85)], chance=0.25))
    assert svg.count('class="dot"') == 1 and svg.count('class="interval"') == 1
    assert _ticks(svg).count("2026-W09") == 1
