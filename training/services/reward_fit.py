"""The fit_reward run: labels of the round's snapshot → a fresh, normalised reward model.

It trains on the labels of train-split, non-calibration comparisons only; valid-split labels give
its held-out accuracy (`reward/valid_accuracy`); what each part contributed, and why the rest was
left out, goes to the run's `report` (its page). After fitting, the model is scored on the
researchers' calibration answers: a reward that agrees with them less often than chance (the 2019
sign-flip bug) pulls the andon cord.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import uuid

from training.models import TrainingRun
from training.rlhf.config import RewardFitConfig, resolve_device
from training.rlhf.export import HF_SEQUENCE_CLASSIFICATION_DIR, export_beside
from training.rlhf.reward_model import encode_comparisons, evaluate, fit
from training.rlhf.task import task_write
from training.selectors import base_policy_sample_pairs, calibration_records, reward_fit_data
from training.services.andon import andon_pull
from training.services.models_io import final_model_dir, task_truncate_token
from training.services.reporter import RunReporter
from training.services.task import formatted, query_format
from training.services.runs import checkpoint_record, run_metrics_record
from training.services.tripwires import check_calibration_accuracy, tripwire_limits

_FIELDS = {f.name for f in dataclasses.fields(RewardFitConfig)}
_NOT_FROM_RUN = {"comparisons_path", "references_path", "output_dir", "metrics_path"}
# Fewer stored base-policy samples than this (and than normalize_samples) give too rough a std: sample rho.
MIN_STORED_BASE_SAMPLES = 32


def reward_fit_config(run: TrainingRun) -> RewardFitConfig:
    """The library config from the run's `config` (unknown keys are ignored, paths are ours)."""
    values = {k: v for k, v in run.config.items() if k in _FIELDS and k not in _NOT_FROM_RUN}
    values.setdefault("model", run.base_model)
    values.setdefault("seed", run.seed)
    values.update(task_truncate_token(run))
    return RewardFitConfig(**values).validate()


def save_atomically(model, tokenizer, folder, config: RewardFitConfig | None = None) -> str | None:
    """Write into a temporary sibling folder, then rename: a kill mid-write leaves no half model.

    The folder also holds `hf-sequence-classification/`, the model as AutoModelForSequenceClassification
    loads it (training/rlhf/export.py), and `task.json`, the task definition it was fitted for (training/rlhf/task.py);
    returns why the export was skipped (a `mean` readout), else None.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    model.save_pretrained(tmp, tokenizer)
    if config is not None:
        task_write(tmp, config, tokenizer)
    skipped = export_beside(model, tokenizer, tmp)
    for path in tmp.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return skipped


def _report(run: TrainingRun, reward_data: dict) -> None:
    """Keep what the fit trained and was measured on with the run (`report["reward_data"]`, its page)."""
    run.report = {**(run.report or {}), "reward_data": reward_data}
    TrainingRun.objects.filter(id=run.id).update(report=run.report)


def reward_fit_execute(*, run: TrainingRun, reporter: RunReporter) -> None:
    config = reward_fit_config(run)
    snapshot = run.product.get("label_snapshot", {})
    fit_data = reward_fit_data(project=run.project, max_label_id=snapshot.get("max_label_id"),
                               stored_tokens=bool((run.product or {}).get("stored_tokens")))
    _report(run, fit_data.report)  # before fitting: a run that fails for want of labels still says why
    task = (run.product or {}).get("task")
    comparisons = formatted(fit_data.train, task)
    if len(comparisons) < 2:
        raise ValueError(f"Only {len(comparisons)} labels of train-split comparisons: too few to fit a reward model "
                         "(calibration comparisons and valid/test splits are never trained on).")
    # normalize_before scores rho's samples: the ones the base model already wrote for labelers when
    # there are enough, else fit samples rho itself.
    base_samples = None
    if config.normalize_before:
        stored = base_policy_sample_pairs(project=run.project, base_model=config.policy_model or config.model,
                                          limit=config.normalize_samples)
        stored = [(query_format(query, task), text) for query, text in stored]
        base_samples = stored if len(stored) >= min(config.normalize_samples, MIN_STORED_BASE_SAMPLES) else None
    result = fit(config, comparisons, on_log=reporter.on_step, should_stop=reporter.should_stop,
                 base_samples=base_samples)
    if result.stopped or reporter.stop_requested:
        return

    # Calibration check: does the reward agree with researchers more often than chance?
    calibration = formatted(calibration_records(project=run.project), task)
    accuracy = None
    if calibration:
        data = encode_comparisons(calibration, result.tokenizer, config.query_length, config.response_length)
        accuracy = evaluate(result.model, data, resolve_device(config.device))["valid/accuracy"]
        step = int(result.metrics.get("step", 1))
        run_metrics_record(run_id=run.id, step=step, metrics={"calibration/accuracy": accuracy,
                                                              "calibration/labels": float(len(calibration))})

    # Held-out accuracy on the project's valid split: labels the fit never saw, whatever its own split.
    if fit_data.valid:
        held_out = encode_comparisons(formatted(fit_data.valid, task), result.tokenizer, config.query_length, config.response_length)
        valid = evaluate(result.model, held_out, resolve_device(config.device))
        step = int(result.metrics.get("step", 1))
        run_metrics_record(run_id=run.id, step=step, metrics={
            "reward/valid_accuracy": valid["valid/accuracy"], "reward/valid_loss": valid["valid/loss"],
            "reward/valid_labels": float(len(fit_data.valid))})
        _report(run, {**fit_data.report, "valid_accuracy": valid["valid/accuracy"]})

    folder = final_model_dir(run)
    skipped = save_atomically(result.model, result.tokenizer, folder, config)
    run.report = {**(run.report or {}), "hf_sequence_classification": (
        f"skipped: {skipped}" if skipped else str(folder / HF_SEQUENCE_CLASSIFICATION_DIR))}
    TrainingRun.objects.filter(id=run.id).update(report=run.report)
    checkpoint_record(run=run, step=int(result.metrics.get("step", 0)), path=folder, metrics=result.metrics,
                      is_final=True)
    reason = check_calibration_accuracy(accuracy=accuracy, n=len(calibration), k=run.project.k,
                                        limits=tripwire_limits(run))
    if reason:
        andon_pull(run=run, reason=reason, tripwire="reward_sign")
        reporter.stop_requested = True
