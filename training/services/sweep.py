"""Over-optimisation sweep: one reward model, PPO at several KL budgets, each policy against the base.

A sweep is a round (Round.sweep = {"betas": [...]}) whose one fit_reward run fans out into a PPO run per
KL coefficient β (fixed, not adaptive: β sets the budget), each followed by a sample run that publishes
comparisons of that policy against the base only (base_share 1.0). Labelers' win rate of each policy and
the reward model's score then read against √KL (training/selectors/sweep.py) show where optimising the
reward model stops pleasing people. round_run_ended chains the fan-out as it chains a round: every queued
run whose reward or policy run finished is enqueued.
"""
from __future__ import annotations

import math

from django.db import transaction

from labeling.errors import Forbidden, InvalidInput
from labeling.models import Project
from training.models import Round, TrainingRun
from training.services.rounds import round_start
from training.services.runs import run_create

MIN_BETAS, MAX_BETAS = 3, 8


def sweep_betas_errors(betas) -> list[str]:
    """What is wrong with a sweep's KL coefficients: 3 to 8 distinct, positive, finite numbers."""
    if not isinstance(betas, (list, tuple)) or not all(
            isinstance(b, (int, float)) and not isinstance(b, bool) for b in betas):
        return ["β values must be a list of numbers"]
    errors = []
    if not MIN_BETAS <= len(betas) <= MAX_BETAS:
        errors.append(f"a sweep takes {MIN_BETAS} to {MAX_BETAS} β values, got {len(betas)}")
    bad = [b for b in betas if not (math.isfinite(b) and b > 0)]
    if bad:
        errors.append("every β must be a positive number, got " + ", ".join(repr(b) for b in bad))
    if len(set(betas)) != len(betas):
        errors.append("each β once: a repeated β trains the same budget twice")
    return errors


def sweep_start(*, project: Project, user, betas: list[float], overrides: dict | None = None) -> Round:
    """Start a sweep round (researchers and admins): the round's fit, then per β a PPO run with a fixed
    `kl_coef` β against that reward model and a sample run of policy-versus-base comparisons. Checked as
    a round is (round_start: settings, labels, one running round per project), plus the β list."""
    if not (user.is_authenticated and user.has_perm("training.start_runs")):
        raise Forbidden("Only researchers and admins start sweeps.")
    errors = sweep_betas_errors(betas)
    if errors:
        raise InvalidInput("Sweep: " + "; ".join(errors) + ".", field="betas")
    betas = [float(b) for b in betas]
    overrides = dict(overrides or {})
    # Fixed β (an adaptive controller would move every budget to one target), every comparison against the base.
    overrides["ppo"] = {**overrides.get("ppo", {}), "kl_coef": betas[0], "adaptive_kl": False}
    overrides["sample"] = {**overrides.get("sample", {}), "base_share": 1.0}
    with transaction.atomic():  # the fit's task is sent on commit, once every run of the sweep exists
        rnd = round_start(project=project, user=user, overrides=overrides)
        Round.objects.filter(id=rnd.id).update(sweep={"betas": betas})
        rnd.sweep = {"betas": betas}
        fit, ppo, sample = rnd.runs.order_by("id")
        for beta in betas[1:]:
            common = {"project": project, "base_model": ppo.base_model, "seed": ppo.seed, "started_by": user,
                      "round": rnd, "enqueue": False}
            next_ppo = run_create(kind=TrainingRun.Kind.PPO, reward_run=fit, config={**ppo.config, "kl_coef": beta},
                                  product=ppo.product, **common)
            run_create(kind=TrainingRun.Kind.SAMPLE, policy_run=next_ppo, config=sample.config,
                       product=sample.product, **common)
    return rnd
