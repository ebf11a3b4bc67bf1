"""Run charts: a one-point series is drawn (a dot), and the axis labels are distinct."""
import re

from training.charts import line_chart


def _ticks(svg: str) -> list[str]:
    return re.findall(r'class="tick">([^<]*)</text>', svg)


def test_one_point_draws_a_dot_and_names_its_step_once():
    svg = str(line_chart("reward/loss", [(3, 0.5)]))
    assert re.search(r'<circle cx="[\d.]+" cy="[\d.]+" r="2.5" class="dot"/>', svg)
    ticks = _ticks(svg)
    assert ticks.count("step 3") == 1 and not {"2", "4", "step 4"} & set(ticks)
    assert len(ticks) == len(set(ticks))


def test_close_values_get_distinct_y_labels():
    """0.50001 and 0.50002 both print as 0.5 at 3 digits: the labels take the digits to differ."""
    ticks = _ticks(str(line_chart("kl", [(0, 0.50001), (1, 0.50002)])))
    assert len(ticks) == len(set(ticks)), ticks


def test_flat_series_labels_differ():
    ticks = _ticks(str(line_chart("kl", [(0, 2.0), (5, 2.0)])))
    assert len(ticks) == len(set(ticks)), ticks
