"""Reads of the training app, scoped to what the acting user may see."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.http import Http404

from labeling.models import Assignment, ComparisonSample, Query
from labeling.models import Comparison as LabelingComparison  # Comparison here is the library's record
from training.models import BASE_POLICY_SOURCE, AndonPull, Checkpoint, Round, RunMetric, TrainingRun
from training.rlhf.data import Comparison
from labeling.metrics import wilson_interval

CHART_KEYS = ["objective/score", "objective/kl", "objective/kl_coef", "objective/entropy",
              "ppo/loss/policy", "ppo/loss/value", "train/loss", "train/accuracy", "valid/accuracy"]


def user_sees_all_runs(user) -> bool:
    return user.is_authenticated and (user.has_perm("training.start_runs") or user.has_perm("training.manage_runs"))


def run_comparisons(run: TrainingRun):
    """Comparisons that show this run's samples: published by it, or by sampling from its policy."""
    return LabelingComparison.objects.filter(Q(source_run=run) | Q(source_run__policy_run=run))


def run_served_to(*, run: TrainingRun, user) -> bool:
    """Has this user been shown samples of this run (the contractor's right to pull its cord)?"""
    return Assignment.objects.filter(labeler=user, comparison__in=run_comparisons(run)).exists()


def run_get_for_user(*, run_id: int, user) -> TrainingRun:
    """The run if this user may see it (researchers, admins, or a labeler shown its samples); else 404."""
    run = TrainingRun.objects.select_related("project", "round", "started_by", "stop_requested_by").filter(id=run_id).first()
    if run is None or not (user_sees_all_runs(user) or run_served_to(run=run, user=user)):
        raise Http404("No such run.")
    return run


def runs_for_project(project):
    return TrainingRun.objects.filter(project=project).select_related("round").order_by("-id")


def run_metric_series(run: TrainingRun, keys: list[str] | None = None) -> dict[str, list[tuple[int, float | None]]]:
    """{key: [(step, value), …]} in step order, for the charts (one query)."""
    series: dict[str, list[tuple[int, float | None]]] = defaultdict(list)
    qs = RunMetric.objects.filter(run=run)
    if keys:
        qs = qs.filter(key__in=keys)
    for key, step, value in qs.order_by("key", "step").values_list("key", "step", "value"):
        series[key].append((step, value))
    return dict(series)


def run_latest_metrics(run: TrainingRun) -> dict[str, float | None]:
    latest = RunMetric.objects.filter(run=run, step=run.step).values_list("key", "value")
    return dict(latest)


def run_checkpoints(run: TrainingRun):
    return Checkpoint.objects.filter(run=run).order_by("-step")


def run_audit_log(run: TrainingRun):
    return AndonPull.objects.filter(run=run).select_related("pulled_by", "resolved_by").order_by("-created_at")


def run_samples_side_by_side(run: TrainingRun, limit: int = 8) -> list[dict]:
    """Recent queries with this run's policy samples beside the base policy's (and references)."""
    comparisons = list(run_comparisons(run).select_related("query").order_by("-id")[:limit])
    entries = ComparisonSample.objects.filter(comparison__in=comparisons).select_related("sample")
    by_comparison = defaultdict(list)
    for entry in entries:
        by_comparison[entry.comparison_id].append(entry.sample)
    rows = []
    for comparison in comparisons:
        samples = by_comparison[comparison.id]
        # Policy samples are named by checkpoint; the base policy is "baseline:base-policy".
        baseline = [s for s in samples if s.source.startswith(("baseline:", "reference"))]
        rows.append({
            "comparison": comparison,
            "context": comparison.query.context,
            "policy": [s for s in samples if s not in baseline],
            "others": baseline,
        })
    return rows


def _records(labels) -> list[Comparison]:
    """training/rlhf Comparison records (query, samples, best): one per label (several labels of one
    comparison are several training rows, as in the 2019 code)."""
    labels = list(labels.select_related("comparison__query").order_by("id"))
    texts: dict[int, list[str]] = defaultdict(list)
    entries = (ComparisonSample.objects.filter(comparison_id__in={label.comparison_id for label in labels})
               .order_by("comparison_id", "position").values_list("comparison_id", "sample__text"))
    for comparison_id, text in entries:
        texts[comparison_id].append(text)
    return [Comparison(query=label.comparison.query.context, samples=texts[label.comparison_id], best=label.chosen_index)
            for label in labels]


def comparison_records_for_snapshot(*, project, max_label_id: int | None) -> list[Comparison]:
    """Every answered (not skipped) label of the project up to the snapshot, as training records."""
    from labeling.models import Label

    labels = Label.objects.filter(comparison__project=project, skipped=False)
    if max_label_id is not None:
        labels = labels.filter(id__lte=max_label_id)
    return _records(labels)


def calibration_records(*, project) -> list[Comparison]:
    """Researchers' answers on the calibration slice: the ground truth the tripwires check a reward against
    (researchers as labeling/roles.py defines them, the same set the dashboards judge labelers by)."""
    from labeling.models import Label
    from labeling.roles import researchers

    labels = Label.objects.filter(comparison__project=project, comparison__is_calibration=True, skipped=False,
                                  labeler__in=researchers())
    return _records(labels)


def base_policy_sample_pairs(*, project, base_model: str, limit: int) -> list[tuple[str, str]]:
    """(query, text) of stored samples the base policy rho wrote in this project's sample runs with
    `base_model`, oldest first, at most `limit`: what the reward fit's normalize_before step scores."""
    rows = (ComparisonSample.objects
            .filter(comparison__project=project, comparison__source_run__base_model=base_model,
                    sample__source=BASE_POLICY_SOURCE)
            .order_by("sample_id").values_list("sample_id", "sample__query__context", "sample__text"))
    pairs: dict[int, tuple[str, str]] = {}
    for sample_id, context, text in rows.iterator():
        pairs.setdefault(sample_id, (context, text))
        if len(pairs) == limit:
            break
    return list(pairs.values())


# ---------------------------------------------------------------- policy vs base win rate

def sample_side(source: str) -> str | None:
    """"base" for a base-policy sample, "policy" for one a round's policy wrote (tagged with its
    checkpoint), None for references and other baselines."""
    if source == BASE_POLICY_SOURCE:
        return "base"
    if source == "reference" or source.startswith("baseline:"):
        return None
    return "policy"


@dataclass(frozen=True)
class RoundWinRate:
    round_id: int
    round_number: int
    wins: int
    losses: int
    unsure: int  # counted labels marked unsure
    chance: float | None  # mean share of policy samples among policy + base ones: a random chooser's win rate

    @property
    def n(self) -> int:
        return self.wins + self.losses

    @property
    def rate(self) -> float | None:
        return self.wins / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.wins, self.n)


def round_win_rates(*, project, split: str | None = "valid") -> list[RoundWinRate]:
    """Policy-versus-base win rate of each round of the project, newest round first (3 queries).

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
    [{split: RoundWinRate}], from one read of the labels (3 queries)."""
    from labeling.models import Label

    labels = Label.objects.filter(comparison__project=project, comparison__source_run__round__isnull=False,
                                  skipped=False)
    if None not in splits:
        labels = labels.filter(comparison__query__split__in=splits)
    answers = list(labels.values_list("comparison_id", "chosen_index", "unsure", "comparison__source_run__round_id",
                                      "comparison__query__split"))
    sides: dict[int, dict[int, str | None]] = defaultdict(dict)
    entries = (ComparisonSample.objects.filter(comparison_id__in=labels.values("comparison_id"))
               .values_list("comparison_id", "position", "sample__source"))
    for comparison_id, position, source in entries:
        sides[comparison_id][position] = sample_side(source)

    # (round, split) -> wins, losses, unsure, sum of policy shares
    tally: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0.0])
    for comparison_id, chosen, unsure, round_id, query_split in answers:
        in_comparison = list(sides[comparison_id].values())
        policy, base = in_comparison.count("policy"), in_comparison.count("base")
        side = sides[comparison_id].get(chosen)
        if not policy or not base or side is None:
            continue
        for split in {query_split, None} & set(splits):
            counts = tally[round_id, split]
            counts[0 if side == "policy" else 1] += 1
            counts[2] += unsure
            counts[3] += policy / (policy + base)
    table = []
    for round_id, number in Round.objects.filter(project=project).order_by("-number").values_list("id", "number"):
        row = {}
        for split in splits:
            wins, losses, unsure, share_sum = tally[round_id, split]
            row[split] = RoundWinRate(round_id=round_id, round_number=number, wins=wins, losses=losses, unsure=unsure,
                                      chance=share_sum / (wins + losses) if wins + losses else None)
        table.append(row)
    return table


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


# ---------------------------------------------------------------- experiment report (manage.py mock_sentiment)

REPORT_PLOTS = {"score_vs_kl": "True score against KL from the base",
                "rm_accuracy": "Reward-model accuracy against labels"}


def run_report(run: TrainingRun) -> dict | None:
    """The experiment's headline figures and the names of its plots, or None for an ordinary run."""
    report = run.report
    if not report or not isinstance(report, dict):
        return None
    plots = report.get("plots") or {}
    return {"figures": report.get("figures") or {},
            "plots": [(name, title) for name, title in REPORT_PLOTS.items() if name in plots]}


def run_plot_path(run: TrainingRun, name: str) -> Path | None:
    """The stored path of a run's PNG plot when it is a regular .png file under ARTIFACTS_DIR, else None.
    The path comes from the database only; `name` just picks one of the recorded plots."""
    report = run.report
    stored = report.get("plots", {}).get(name) if isinstance(report, dict) and name in REPORT_PLOTS else None
    if not isinstance(stored, str):
        return None
    path = Path(stored).resolve()
    root = Path(settings.ARTIFACTS_DIR).resolve()
    if root not in path.parents or path.suffix != ".png" or not path.is_file():
        return None
    return path
