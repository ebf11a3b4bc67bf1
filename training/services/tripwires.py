"""Tripwires: automatic andon pulls (DESIGN.md "The andon cord").

Per-project thresholds live in `Project.training_settings["tripwires"]`; each run copies them
into its product settings (`run.product["tripwires"]`) when it is created, so a run is judged by
the rules it started under.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from labeling.models import Label, SampleFlag
from training.models import TrainingRun

DEFAULTS = {
    "kl_max": 30.0,  # nats; the 2019 target is 6, so five times that is clearly runaway
    "min_calibration_accuracy": None,  # None: chance level 1/K (the sign-flip bug scores below it)
    "min_calibration_labels": 8,
    "max_flag_share": 0.25,
    "min_labels_for_flag_share": 20,
}


def tripwire_settings(project) -> dict:
    return {**DEFAULTS, **(project.training_settings or {}).get("tripwires", {})}


def tripwire_limits(run: TrainingRun) -> dict:
    """The thresholds `run` is judged by: the project's, then those the run was created with."""
    return {**tripwire_settings(run.project), **run.product.get("tripwires", {})}


def check_metrics(metrics: dict, limits: dict) -> str | None:
    """A reason to stop from one step's metrics, or None."""
    bad = sorted(k for k, v in metrics.items() if "loss" in k and isinstance(v, float) and not math.isfinite(v))
    if bad:
        return f"nan_loss: {', '.join(bad)} is NaN or inf"
    kl = metrics.get("objective/kl")
    if isinstance(kl, (int, float)) and math.isfinite(kl) and kl > limits["kl_max"]:
        return f"kl_cap: KL {kl:.2f} nats is above the cap of {limits['kl_max']:.2f}"
    return None


def check_flag_share(run: TrainingRun, limits: dict) -> str | None:
    """Too many of this run's samples flagged by labelers."""
    labels = Label.objects.filter(comparison__source_run=run, skipped=False).count()
    if labels < limits["min_labels_for_flag_share"]:
        return None
    flags = SampleFlag.objects.filter(label__comparison__source_run=run).values("label_id").distinct().count()
    share = flags / labels
    if share > limits["max_flag_share"]:
        return f"flag_share: {share:.0%} of labels on this run's samples flag a sample (limit {limits['max_flag_share']:.0%})"
    return None


def check_calibration_accuracy(*, accuracy: float | None, n: int, k: int, limits: dict) -> str | None:
    """The reward (as the trainer will use it) must agree with researchers more often than chance."""
    if accuracy is None or n < limits["min_calibration_labels"]:
        return None
    threshold = limits["min_calibration_accuracy"]
    threshold = 1.0 / k if threshold is None else threshold
    if accuracy < threshold:
        return (f"reward_sign: the reward agrees with researchers on {accuracy:.0%} of {n} calibration labels, "
                f"below {threshold:.0%} (a flipped sign?)")
    return None


def tripwire_for(run: TrainingRun) -> Callable[[dict], str | None]:
    limits = tripwire_limits(run)
    calls = {"n": 0}

    def check(metrics: dict) -> str | None:
        reason = check_metrics(metrics, limits)
        calls["n"] += 1
        if reason is None and calls["n"] % 5 == 0:
            reason = check_flag_share(run, limits)
        return reason

    return check
