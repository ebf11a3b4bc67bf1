"""An over-optimisation sweep's points: per KL budget, √KL, the reward model's score and the labelers' win rate."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from labeling.models import Comparison, Label
from training.models import Round, RunMetric, TrainingRun
from training.selectors.rounds import WinLoss, comparison_sides, label_outcome


@dataclass(frozen=True)
class SweepPoint(WinLoss):
    """One KL budget of a sweep: its PPO run and the sample run that published its comparisons."""

    beta: float
    ppo_run_id: int
    ppo_status: str
    sample_run_id: int | None
    kl: float | None  # the PPO run's `objective/kl` at its last step (nats per response)
    score: float | None  # the reward model's mean score of the policy's samples, `objective/score` at the last step
    comparisons: int  # published by the sample run
    wins: int  # labels choosing the policy's sample over the base's
    losses: int

    @property
    def sqrt_kl(self) -> float | None:
        """√KL; a small negative estimate (possible early on: KL is estimated from samples) reads as 0."""
        return None if self.kl is None else math.sqrt(max(self.kl, 0.0))



def sweep_rounds(*, project, limit: int = 5) -> list[Round]:
    """The project's sweep rounds, newest first."""
    return list(project.rounds.exclude(sweep={}).order_by("-number")[:limit])


def _last_values(run_ids: list[int], keys: tuple[str, ...]) -> dict[tuple[int, str], float | None]:
    """(run, key) -> the value at the run's last step of that key."""
    last: dict[tuple[int, str], float | None] = {}
    rows = (RunMetric.objects.filter(run_id__in=run_ids, key__in=keys).order_by("run_id", "key", "step")
            .values_list("run_id", "key", "value"))
    for run_id, key, value in rows:
        last[run_id, key] = value
    return last


def _win_tally(sample_run_ids: list[int]) -> dict[int, list[int]]:
    """sample run -> [wins, losses] of the policy against the base, counted as round_win_rates counts them:
    every answered label on a comparison holding a policy and a base sample, one trial per label, decided by the
    side of the sample chosen (a reference chosen is not counted); every split."""
    labels = Label.objects.filter(comparison__source_run_id__in=sample_run_ids, skipped=False)
    sides = comparison_sides(labels)
    tally: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for comparison_id, chosen, confidence, run_id in labels.values_list("comparison_id", "chosen_index", "confidence",
                                                                        "comparison__source_run_id"):
        side = label_outcome(sides[comparison_id], chosen, confidence)
        if side is not None:
            tally[run_id][0 if side == "policy" else 1] += 1
    return tally


def sweep_points(*, rnd: Round) -> list[SweepPoint]:
    """One point per PPO run of the sweep round, in the order of its β values (5 queries)."""
    runs = list(rnd.runs.filter(kind__in=(TrainingRun.Kind.PPO, TrainingRun.Kind.SAMPLE)).order_by("id"))
    ppo_runs = [r for r in runs if r.kind == TrainingRun.Kind.PPO]
    sample_of = {r.policy_run_id: r for r in runs if r.kind == TrainingRun.Kind.SAMPLE}
    last = _last_values([r.id for r in ppo_runs], ("objective/kl", "objective/score"))
    sample_ids = [s.id for s in sample_of.values()]
    tally = _win_tally(sample_ids)
    published = defaultdict(int)
    for run_id in Comparison.objects.filter(source_run_id__in=sample_ids).values_list("source_run_id", flat=True):
        published[run_id] += 1
    points = []
    for ppo in ppo_runs:
        sample = sample_of.get(ppo.id)
        wins, losses = tally[sample.id] if sample else (0, 0)
        points.append(SweepPoint(
            beta=float(ppo.config.get("kl_coef", 0.0)), ppo_run_id=ppo.id, ppo_status=ppo.status,
            sample_run_id=sample.id if sample else None, kl=last.get((ppo.id, "objective/kl")),
            score=last.get((ppo.id, "objective/score")), comparisons=published[sample.id] if sample else 0,
            wins=wins, losses=losses))
    return points
