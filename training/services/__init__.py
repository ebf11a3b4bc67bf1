"""Writes of the training app. Import from here."""
from training.services.andon import (
    Quarantined,
    andon_abort,
    andon_can_pull,
    andon_escalate,
    andon_pull,
    andon_pull_comparison,
    andon_resolve,
    andon_resume,
    quarantine_check,
)
from training.services.leases import run_claim, run_heartbeat, run_release, runs_reap
from training.services.rounds import round_run_ended, round_start
from training.services.runs import (
    checkpoint_record,
    run_create,
    run_enqueue,
    run_metrics_record,
)
from training.services.settings import (
    SettingsInvalid,
    base_model_check,
    round_overrides_errors,
    training_settings_errors,
    training_settings_save,
)

__all__ = [
    "Quarantined", "andon_abort", "andon_can_pull", "andon_escalate", "andon_pull", "andon_pull_comparison",
    "andon_resolve", "andon_resume", "checkpoint_record", "quarantine_check",
    "round_run_ended", "round_start", "run_claim", "run_create", "run_enqueue", "run_heartbeat",
    "run_metrics_record", "run_release", "runs_reap",
    "SettingsInvalid", "base_model_check", "round_overrides_errors", "training_settings_errors",
    "training_settings_save",
]
