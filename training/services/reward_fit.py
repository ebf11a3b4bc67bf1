"""The fit_reward run: labels of the round's snapshot → a fresh, normalised reward model.

It trains on the labels of train-split, non-calibration comparisons only; valid-split labels give
its held-out accuracy (`reward/valid_accuracy`); what each part contributed, and why the rest was
left out, goes to the run's `report` (its page). After fitting, the model is scored on the
researchers' calibration answers: a reward that agrees with them less often than chance (the 2019
sign-flip bug) pulls the andon cord.

A run whose product asks for `gpus: N` (N > 1) fits under torchrun, one process per GPU (training/services/ranks.py):
every rank reads the same snapshot and fits its share of each batch (the run's `strategy`, ddp or fsdp); rank 0 alone
reports, evaluates, saves and records the checkpoint.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import uuid

import torch
import torch.distributed

from training.models import TrainingRun
from training.rlhf import distributed as dist
from training.rlhf.config import RewardFitConfig, resolve_device
from training.rlhf.export import HF_SEQUENCE_CLASSIFICATION_DIR, export_beside
from training.rlhf.reward_model import encode_comparisons, evaluate, fit
from training.rlhf.task import task_write
from training.selectors import RewardFitData, base_policy_sample_pairs, calibration_records, reward_fit_data
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


@dataclasses.dataclass
class _Inputs:
    """What a fit reads from the database: the same rows in the same order on every rank (the selectors order by id)."""

    config: RewardFitConfig
    fit_data: RewardFitData
    task: dict | None
    comparisons: list


def _inputs(run: TrainingRun, *, report: bool) -> _Inputs:
    """The run's config and snapshot records; too few train labels is an error (after `report`, which says why)."""
    config = reward_fit_config(run)
    snapshot = run.product.get("label_snapshot", {})
    fit_data = reward_fit_data(project=run.project, max_label_id=snapshot.get("max_label_id"),
                               stored_tokens=bool((run.product or {}).get("stored_tokens")))
    if report:
        _report(run, fit_data.report)  # before fitting: a run that fails for want of labels still says why
    task = (run.product or {}).get("task")
    comparisons = formatted(fit_data.train, task)
    if len(comparisons) < 2:
        raise ValueError(f"Only {len(comparisons)} labels of train-split comparisons: too few to fit a reward model "
                         "(calibration comparisons and valid/test splits are never trained on).")
    return _Inputs(config, fit_data, task, comparisons)


def _pin_snapshot(run: TrainingRun) -> None:
    """A run without a label snapshot (started outside a round) reads the labels as it finds them: each rank reading
    them itself, a label written meanwhile would reach some ranks and not others. The newest label now is the
    snapshot every rank reads (and the run's product keeps it)."""
    from django.db.models import Max

    from labeling.models import Label

    snapshot = (run.product or {}).get("label_snapshot") or {}
    if snapshot.get("max_label_id") is not None:
        return
    newest = Label.objects.filter(comparison__project=run.project).aggregate(newest=Max("id"))["newest"]
    run.product = {**(run.product or {}), "label_snapshot": {**snapshot, "max_label_id": newest}}
    TrainingRun.objects.filter(id=run.id).update(product=run.product)


def reward_fit_execute(*, run: TrainingRun, reporter: RunReporter) -> None:
    """Fit here, or (product `gpus` > 1) under torchrun with one process per GPU (training/services/ranks.py)."""
    gpus = int((run.product or {}).get("gpus", 1))
    if gpus > 1:
        _pin_snapshot(run)
    inputs = _inputs(run, report=True)  # checked here too: a run without labels fails before any rank starts
    if gpus > 1:
        from training.services.ranks import execute_ranks

        execute_ranks(run=run, reporter=reporter, gpus=gpus)
        return
    reward_fit_train(run=run, reporter=reporter, inputs=inputs)


def _evaluation_device(model, config: RewardFitConfig) -> torch.device:
    """Where rank 0 scores (and saves) the fitted model. Alone or under DDP it is where it trained. Under FSDP it is the
    gathered whole copy, on the CPU: it moves to this rank's GPU (the shards and optimiser state are freed by now, and
    scoring needs far less memory than training), or stays on the CPU when it does not fit there even so."""
    where = next(model.parameters()).device
    target = resolve_device(config.device)
    if where.type == target.type:
        return where
    if target.type == "cuda":  # a rank's own GPU (init_distributed made it current), whatever index the config names
        target = torch.device("cuda", torch.cuda.current_device())
    try:
        model.to(target)
    except torch.cuda.OutOfMemoryError:
        model.to(where)  # whatever had moved comes back: one device for every weight
        torch.cuda.empty_cache()
        return where
    return target


def reward_fit_train(*, run: TrainingRun, reporter: RunReporter | None, inputs: _Inputs | None = None) -> None:
    """The fit's work in this process: alone, or as one rank of a torchrun group (then `reporter` is rank 0's and
    None elsewhere). Every rank fits on the same records; only the rank whose result is `main` evaluates, saves,
    records the checkpoint and checks the calibration tripwire."""
    inputs = inputs or _inputs(run, report=False)  # the worker wrote the report before starting the ranks
    config, fit_data, task = inputs.config, inputs.fit_data, inputs.task
    # normalize_before scores rho's samples: the ones the base model already wrote for labelers when
    # there are enough, else fit samples rho itself.
    base_samples = None
    if config.normalize_before:
        stored = base_policy_sample_pairs(project=run.project, base_model=config.policy_model or config.model,
                                          limit=config.normalize_samples)
        stored = [(query_format(query, task), text) for query, text in stored]
        base_samples = stored if len(stored) >= min(config.normalize_samples, MIN_STORED_BASE_SAMPLES) else None
    # fit asks rank 0's callbacks only; elsewhere there are none (it agrees on stops over the ranks).
    result = fit(config, inputs.comparisons, on_log=reporter.on_step if reporter else None,
                 should_stop=reporter.should_stop if reporter else None, base_samples=base_samples)
    if dist.is_distributed():
        # Nothing collective follows: each rank leaves the group now, so rank 0's evaluation and save (minutes for
        # a large model) hold no collective the others would wait on until it times out.
        torch.distributed.destroy_process_group()
    if not result.main or result.stopped or reporter is None or reporter.stop_requested:
        return
    device = _evaluation_device(result.model, config)

    # Calibration check: does the reward agree with researchers more often than chance?
    calibration = formatted(calibration_records(project=run.project), task)
    accuracy = None
    if calibration:
        data = encode_comparisons(calibration, result.tokenizer, config.query_length, config.response_length)
        accuracy = evaluate(result.model, data, device)["valid/accuracy"]
        step = int(result.metrics.get("step", 1))
        run_metrics_record(run_id=run.id, step=step, metrics={"calibration/accuracy": accuracy,
                                                              "calibration/labels": float(len(calibration))})

    # Held-out accuracy on the project's valid split: labels the fit never saw, whatever its own split.
    if fit_data.valid:
        held_out = encode_comparisons(formatted(fit_data.valid, task), result.tokenizer, config.query_length, config.response_length)
        valid = evaluate(result.model, held_out, device)
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
