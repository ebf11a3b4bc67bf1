"""Policy-versus-base win rates per round, from labels on comparisons that mix both (Wilson intervals)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db import connection

from labeling.label_types import PairwiseConfidence
from labeling.metrics import wilson_interval
from labeling.models import ComparisonSample, Query
from training.models import BASE_POLICY_SOURCE, Round


def sample_side(source: str) -> str | None:
    """"base" for a base-policy sample, "policy" for one a round's policy wrote (tagged with its
    checkpoint), None for references and other baselines."""
    if source == BASE_POLICY_SOURCE:
        return "base"
    if source == "reference" or source.startswith("baseline:"):
        return None
    return "policy"


def comparison_sides(labels) -> dict[int, dict[int, str | None]]:
    """comparison id -> canonical position -> `sample_side`, for the comparisons of `labels` (one query)."""
    sides: dict[int, dict[int, str | None]] = defaultdict(dict)
    entries = (ComparisonSample.objects.filter(comparison_id__in=labels.values("comparison_id"))
               .values_list("comparison_id", "position", "sample__source"))
    for comparison_id, position, source in entries:
        sides[comparison_id][position] = sample_side(source)
    return sides


def label_outcome(sides: dict[int, str | None], chosen: int, confidence: int | None = None) -> str | None:
    """"policy" (a win) or "base" (a loss) for a label choosing `chosen` in a comparison of these sides; None when
    the comparison does not hold both a policy and a base sample, the chosen one is neither (a reference), or the
    label says there is no preference (a 5 on the 9-point scale: its side is only the sample shown first)."""
    if confidence == PairwiseConfidence.MIDDLE:
        return None
    in_comparison = list(sides.values())
    if "policy" not in in_comparison or "base" not in in_comparison:
        return None
    return sides.get(chosen)


class WinLoss:
    """Wins and losses of a policy against the base: n, the rate and its Wilson 95% interval."""

    wins: int
    losses: int

    @property
    def n(self) -> int:
        return self.wins + self.losses

    @property
    def rate(self) -> float | None:
        return self.wins / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.wins, self.n)


@dataclass(frozen=True)
class RoundWinRate(WinLoss):
    round_id: int
    round_number: int
    wins: int
    losses: int
    unsure: int  # counted labels marked unsure
    chance: float | None  # mean share of policy samples among policy + base ones: a random chooser's win rate


def round_win_rates(*, project, split: str | None = "valid") -> list[RoundWinRate]:
    """Policy-versus-base win rate of each round of the project, newest round first (2 queries).

    Counted: every answered (not skipped) label on a comparison that a run of the round published
    (Comparison.source_run: the sample run, or PPO's online publishing), whose query is in `split`
    (Query.split; None counts every split), and that holds at least one policy sample and one
    base-policy sample (see `sample_side`). The label is a win when the chosen sample is a policy
    sample, a loss when it is a base-policy sample; choosing a reference (or another baseline) is
    not counted. Unsure labels count as what they chose.

    Ties across K > 2: a comparison may hold several policy and several base samples; the label is
    still one trial, decided by the side of the one sample chosen, never K−1 pairwise outcomes, so
    there are no ties. Because a random chooser then wins with the policy's share of the samples
    (K=4 with 2 + 2: 0.5; K=3 with 2 + 1: 0.67), `chance` reports that share averaged over the
    counted labels: compare the rate with it, not with 0.5. Several labels of one comparison are
    several trials, so the Wilson interval is somewhat too narrow when labels_per_comparison > 1.

    The loop's sample run draws its queries from the split in its config (`"split"`, default
    "train"): a project gets validation comparisons when its training settings say
    `"sample": {"split": "valid"}`.
    """
    return [by_split[split] for by_split in round_win_rate_table(project=project, splits=(split,))]


def round_win_rate_table(*, project, splits=(Query.Split.VALID, None)) -> list[dict[str | None, RoundWinRate]]:
    """round_win_rates for several splits at once (None: every split), newest round first, as
    [{split: RoundWinRate}], from one aggregate over the labels (2 queries).

    The database counts, per (round, query split, side of the sample chosen), the labels that
    `label_outcome` counts (the same rules as `sample_side`, in SQL): reading 100k labels and their
    comparisons' 200k samples into Python cost ~700 ms of the runs page."""
    from labeling.models import Comparison, ComparisonSample, Label, Sample
    from training.models import TrainingRun

    table = {"label": Label._meta.db_table, "comparison": Comparison._meta.db_table,
             "entry": ComparisonSample._meta.db_table, "sample": Sample._meta.db_table,
             "run": TrainingRun._meta.db_table, "query": Query._meta.db_table}
    # Per comparison published in a round: how many policy and base-policy samples, and at which positions
    # (bit masks; K ≤ 8). A sample's side follows `sample_side`: the base policy's source, else a
    # reference or another baseline (neither side), else a policy.
    base = "s.source = %(base)s"
    policy = f"NOT ({base} OR s.source = %(reference)s OR substr(s.source, 1, 9) = 'baseline:')"
    sql = f"""
        SELECT m.round_id, q.split,
               CASE WHEN (m.policy_at >> l.chosen_index) & 1 = 1 THEN 'policy'
                    WHEN (m.base_at >> l.chosen_index) & 1 = 1 THEN 'base' END AS side,
               COUNT(*), SUM(CASE WHEN l.unsure THEN 1 ELSE 0 END), SUM(1.0 * m.policy / (m.policy + m.base))
        FROM (SELECT e.comparison_id, r.round_id, c.query_id, SUM(CASE WHEN {policy} THEN 1 ELSE 0 END) AS policy,
                     SUM(CASE WHEN {base} THEN 1 ELSE 0 END) AS base,
                     SUM(CASE WHEN {policy} THEN 1 << e.position ELSE 0 END) AS policy_at,
                     SUM(CASE WHEN {base} THEN 1 << e.position ELSE 0 END) AS base_at
              FROM {table['entry']} e
              JOIN {table['comparison']} c ON c.id = e.comparison_id
              JOIN {table['run']} r ON r.id = c.source_run_id
              JOIN {table['sample']} s ON s.id = e.sample_id
              WHERE c.project_id = %(project)s AND r.round_id IS NOT NULL
              GROUP BY e.comparison_id, r.round_id, c.query_id) m
        JOIN {table['label']} l ON l.comparison_id = m.comparison_id
        JOIN {table['query']} q ON q.id = m.query_id
        WHERE m.policy > 0 AND m.base > 0 AND NOT l.skipped AND (l.confidence IS NULL OR l.confidence <> %(middle)s)
        GROUP BY m.round_id, q.split, side"""
    params = {"base": BASE_POLICY_SOURCE, "reference": Sample.REFERENCE, "project": project.id,
              "middle": PairwiseConfidence.MIDDLE}
    # (round, split) -> wins, losses, unsure, sum of policy shares; split None: every split
    tally: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0.0])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for round_id, query_split, side, labels, unsure, share_sum in cursor.fetchall():
            if side is None:  # the chosen sample is neither side (a reference): not counted
                continue
            for split in {query_split, None} & set(splits):
                counts = tally[round_id, split]
                counts[0 if side == "policy" else 1] += labels
                counts[2] += unsure
                counts[3] += float(share_sum)
    rows = []
    for round_id, number in Round.objects.filter(project=project).order_by("-number").values_list("id", "number"):
        row = {}
        for split in splits:
            wins, losses, unsure, share_sum = tally[round_id, split]
            row[split] = RoundWinRate(round_id=round_id, round_number=number, wins=wins, losses=losses, unsure=unsure,
                                      chance=share_sum / (wins + losses) if wins + losses else None)
        rows.append(row)
    return rows


WIN_RATE_CSV_HEADER = ["round", "split", "n", "wins", "losses", "win_rate", "wilson95_low", "wilson95_high",
                       "chance", "unsure"]


def win_rate_csv_rows(table: list[dict[str | None, RoundWinRate]]) -> list[list]:
    """round_win_rate_table as CSV rows (WIN_RATE_CSV_HEADER): validation rows, then all-splits rows."""
    rows = []
    for split, name in ((Query.Split.VALID, "valid"), (None, "all")):
        for r in (by_split[split] for by_split in table):
            low, high = r.interval or ("", "")
            rows.append([r.round_number, name, r.n, r.wins, r.losses, "" if r.rate is None else r.rate, low, high,
                         "" if r.chance is None else r.chance, r.unsure])
    return rows
