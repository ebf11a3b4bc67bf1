"""The ppo run: the base policy tuned against the round's reward model, resumable step by step.

Before the first update the reward, exactly as PPO will see it (sign included), is checked
against the researchers' calibration answers: a reward that prefers what researchers rejected
(the 2019 sign-flip bug) pulls the cord before a single step trains on it. During training,
metrics flow through the reporter (tripwires: KL cap, NaN losses, flag share), checkpoints
are recorded as the trainer writes them, and a killed run resumes from the newest one.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from labeling.models import Query
from training.models import Checkpoint, TrainingRun
from training.rlhf import distributed as dist
from training.rlhf.build import build_policy
from training.rlhf.checkpoint import latest_checkpoint
from training.rlhf.config import PPOConfig, resolve_device
from training.rlhf.ppo import PPOTrainer
from training.rlhf.precision import autocast
from training.rlhf.reward_model import comparison_rewards, encode_comparisons
from training.rlhf.tokenizer import encode_queries
from training.selectors import calibration_records
from training.services.andon import andon_pull
from training.services.models_io import final_checkpoint, task_truncate_token
from training.services.reporter import RunReporter
from training.services.task import formatted, query_format
from training.services.runs import artifacts_path, checkpoint_record, run_metrics_record
from training.services.sampling import publish_samples
from training.services.tripwires import check_calibration_accuracy, tripwire_limits

_FIELDS = {f.name for f in dataclasses.fields(PPOConfig)}
_OURS = {"policy_model", "reward", "queries_path", "checkpoint_dir", "metrics_path"}


def ppo_config(run: TrainingRun) -> PPOConfig:
    """The library config from the run's `config` (never its `product`); models and folders come from the run."""
    values = {k: v for k, v in run.config.items() if k in _FIELDS and k not in _OURS}
    values.setdefault("seed", run.seed)
    values.update(task_truncate_token(run))
    reward_checkpoint = final_checkpoint(run.reward_run) if run.reward_run else None
    reward = run.config.get("reward") if str(run.config.get("reward", "")).startswith("builtin:") else None
    if reward is None:
        if reward_checkpoint is None:
            raise ValueError("This PPO run has no finished reward model to optimise against.")
        reward = reward_checkpoint.path
    return PPOConfig(
        policy_model=run.base_model, reward=reward, checkpoint_dir=str(artifacts_path(run) / "checkpoints"),
        keep_checkpoints=max(2, values.pop("keep_checkpoints", 2)), **values,
    )


def _calibration_reason(run: TrainingRun, config: PPOConfig, reward_model, tokenizer) -> str | None:
    """The reward PPO will optimise, sign flip included, scored on the researchers' answers."""
    records = formatted(calibration_records(project=run.project), (run.product or {}).get("task"))
    if reward_model is None or not records:
        return None
    data = encode_comparisons(records, tokenizer, config.query_length, config.response_length)
    device = resolve_device(config.device)
    with torch.no_grad(), autocast(config.precision, device):
        rewards = comparison_rewards(reward_model, data, device)  # (N, K)
    if config.negate_score:
        rewards = -rewards
    accuracy = (rewards.argmax(-1).cpu() == data.best).float().mean().item()
    run_metrics_record(run_id=run.id, step=0, metrics={"calibration/accuracy": accuracy,
                                                       "calibration/labels": float(len(records))})
    return check_calibration_accuracy(accuracy=accuracy, n=len(records), k=run.project.k,
                                      limits=tripwire_limits(run))


def _record_checkpoints(run: TrainingRun, checkpoint_dir: str, *, final: bool = False) -> Checkpoint | None:
    """Rows for the checkpoint folders on disk; rows of folders the trainer pruned are dropped."""
    latest = latest_checkpoint(checkpoint_dir)
    for stale in Checkpoint.objects.filter(run=run):
        if not Path(stale.path).is_dir():
            stale.delete()
    if latest is None:
        return None
    step = int(latest.name.split("-")[-1])
    existing = Checkpoint.objects.filter(run=run, step=step).first()
    if existing is not None and existing.is_final == final:
        return existing
    return checkpoint_record(run=run, step=step, path=latest, is_final=final)


def ppo_execute(*, run: TrainingRun, reporter: RunReporter) -> None:
    """Train the run here, or (product `gpus` > 1) under torchrun with one process per GPU (ppo_ranks.py)."""
    gpus = int((run.product or {}).get("gpus", 1))
    if gpus > 1:
        from training.services.ppo_ranks import ppo_execute_ranks

        ppo_execute_ranks(run=run, reporter=reporter, gpus=gpus)
        return
    ppo_train(run=run, reporter=reporter)


def ppo_train(*, run: TrainingRun, reporter: RunReporter | None) -> None:
    """The PPO run's work in this process: alone, or as one rank of a torchrun group (then `reporter` is rank 0's
    and None elsewhere: only rank 0 writes to the database; every rank stops at the same point)."""
    config = ppo_config(run)
    device = dist.init_distributed(resolve_device(config.device))  # a rank's own GPU before any model loads
    main = dist.rank() == 0
    reward_fn, reward_model, policy, tokenizer, ref_policy = build_policy(config, device)

    # 1. Sign-flip tripwire before any update.
    reason = _calibration_reason(run, config, reward_model, tokenizer) if main else None
    if dist.any_rank(bool(reason), device):
        if main:
            andon_pull(run=run, reason=reason, tripwire="reward_sign")
            reporter.stop_requested = True
        return

    # 2. The trainer, resumed from the newest checkpoint if an earlier attempt wrote one.
    task = (run.product or {}).get("task")
    texts = [query_format(context, task) for context in Query.objects.filter(
        project=run.project, split=Query.Split.TRAIN).order_by("id").values_list("context", flat=True)]
    if not texts:
        raise ValueError(f"Project {run.project.slug} has no train queries for PPO.")
    queries, query_mask = encode_queries(tokenizer, texts, config.query_length)
    # Rank 0 asks the database; the trainer hands its answer to every rank at the same call.
    trainer = PPOTrainer(config, policy, ref_policy, reward_fn, queries, query_mask, tokenizer,
                         should_stop=reporter.should_stop if main else None)
    resume = latest_checkpoint(config.checkpoint_dir)
    if resume is not None:
        trainer.load_checkpoint(resume)
    if main:
        TrainingRun.objects.filter(id=run.id).update(total_steps=config.n_updates, step=trainer.step_count)

    # 3. Train; every step reports, renews the lease and may be told to stop. Online mode
    #    (the product's `publish_every` N updates) puts the current policy's samples in the labeling queue.
    publish_every = int(run.product.get("publish_every", 0))

    def on_step(metrics: dict) -> bool:
        _record_checkpoints(run, config.checkpoint_dir)
        keep_going = reporter.on_step(metrics)
        step = int(metrics["step"])
        if keep_going and publish_every and step % publish_every == 0:
            published = publish_samples(
                run=run, policy_lm=trainer.policy.lm, base_lm=ref_policy, tokenizer=tokenizer,
                source=f"run{run.id}-step{step}", cfg=run.product.get("online_sample", {}), seed=run.seed + step,
                batch=f"run{run.id}-step{step}", should_stop=reporter.should_stop)
            run_metrics_record(run_id=run.id, step=step, metrics=published.metrics())
        return keep_going and not reporter.stop_requested

    try:
        result = trainer.train(on_step)  # on_step runs on rank 0 only; its answer reaches every rank
    except Exception:  # e.g. out of memory (its message names the settings): what was saved stays recorded
        if main:
            _record_checkpoints(run, config.checkpoint_dir)
        raise
    if main:
        _record_checkpoints(run, config.checkpoint_dir, final=not result.stopped)
