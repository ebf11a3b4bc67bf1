"""Rounds: the batched loop of both papers, as three chained runs.

fit_reward (fresh from the base LM, on a label snapshot) → ppo (from the base policy against
that reward model) → sample (a new batch of comparisons from the new policy, plus a share
from the base policy, into the labeling queue). Each run is enqueued when the one it depends
on finishes; a failed, stopped or aborted run ends the round.
"""
from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from labeling.errors import Conflict, Forbidden, InvalidInput
from labeling.models import Label, Project, Query
from training.models import Round, TrainingRun
from training.rlhf.config import (
    ConfigError,
    PPOConfig,
    RewardFitConfig,
    config_from_dict,
)
from training.services.runs import config_split, run_create, run_enqueue
from training.services.sampling import sample_config_errors
from training.services.task import section_truncation_errors, task_conflicts, task_errors, task_fill, task_of
from training.services.tripwires import tripwire_settings

Kind, Status = TrainingRun.Kind, TrainingRun.Status


def round_configs(project: Project, overrides: dict | None = None) -> dict:
    """The configs of a round's three runs: project defaults, then the caller's overrides. A section
    ("reward", "ppo", "sample") may mix in product keys (e.g. ppo's `publish_every`): they are split
    out into `product[section]`, so each section holds the library's config only. `task` is the
    project's task definition (training/services/task.py), which round_start fills into each section."""
    ts = project.training_settings or {}
    overrides = overrides or {}
    sections = {name: config_split({**ts.get(name, {}), **overrides.get(name, {})})
                for name in ("reward", "ppo", "sample")}
    task = {**ts.get("task", {}), **overrides.get("task", {})}
    return {
        "task": task,
        "base_model": overrides.get("base_model", ts.get("base_model", settings.TRAINING_DEFAULT_BASE_MODEL)),
        "seed": int(overrides.get("seed", ts.get("seed", 0))),
        **{name: library for name, (library, _) in sections.items()},
        "product": {name: product for name, (_, product) in sections.items()},
        "tripwires": tripwire_settings(project),
    }


def gpus_errors(gpus, config: dict, product: dict, section: str = "ppo") -> list[str]:
    """`ppo.gpus` / `reward.gpus`: a whole number from 1 to the GPUs a training worker has (TRAINING_WORKER_GPUS).
    Over several, what the ranks cannot do is refused now rather than in the worker: FSDP's sharded policy cannot
    publish online from one rank (ppo), and fp16-mixed cannot unscale FSDP's sharded gradients (reward; PPOConfig
    checks its own). `config` is the section's library config, `product` its product keys."""
    limit = settings.TRAINING_WORKER_GPUS
    if isinstance(gpus, bool) or not isinstance(gpus, int) or not 1 <= gpus <= limit:
        return [f"{section}: gpus must be a whole number from 1 to {limit} (the GPUs a training worker has, "
                f"TRAINING_WORKER_GPUS), got {gpus!r}"]
    if gpus > 1 and section == "ppo" and config.get("strategy") == "fsdp" and product.get("publish_every"):
        return ["ppo: publish_every (online samples) is not available with strategy fsdp over several GPUs"]
    fsdp_fp16 = config.get("strategy") == "fsdp" and config.get("precision") == "fp16-mixed"
    if gpus > 1 and section == "reward" and fsdp_fp16:
        return ["reward: precision 'fp16-mixed' is not available with strategy 'fsdp' over several GPUs: use "
                "'bf16-mixed' or strategy 'ddp'"]
    return []


def _library_config_errors(configs: dict) -> list[str]:
    """The reward and PPO sections checked as the library will check them, before any run exists: an
    unknown key (a typo such as `kl_coeff`) or a bad value is named now, not in the worker after the fit."""
    # A round's PPO optimises the round's fitted reward model (a folder, never a builtin), which a separate value
    # model copies: checked as that, unless the section names its own reward.
    as_run = {"reward": configs["reward"], "ppo": {"reward": "<the round's reward model>", **configs["ppo"]}}
    reward_product, ppo_product = configs["product"]["reward"], configs["product"]["ppo"]
    errors = gpus_errors(reward_product.get("gpus", 1), configs["reward"], reward_product, section="reward")
    ppo_gpus = gpus_errors(ppo_product.get("gpus", 1), configs["ppo"], ppo_product)
    errors += ppo_gpus
    ranks = ppo_product.get("gpus", 1) if not ppo_gpus else 1
    for name, cls in (("reward", RewardFitConfig), ("ppo", PPOConfig)):
        try:
            config = config_from_dict(cls, as_run[name])
            config.validate(ranks) if name == "ppo" else config.validate()
        except (ConfigError, TypeError) as error:  # TypeError: a value of the wrong type that validate() compared
            errors.append(f"{name}: {error}")
    return errors


def round_start(*, project: Project, user, overrides: dict | None = None) -> Round:
    """Snapshot the labels and queue the round's reward fit (researchers and admins only)."""
    if not (user.is_authenticated and user.has_perm("training.start_runs")):
        raise Forbidden("Only researchers and admins start rounds.")
    configs = round_configs(project, overrides)
    task = configs["task"]
    sections = {name: configs[name] for name in ("reward", "ppo", "sample")}
    ppo_product = configs["product"]["ppo"]
    online = ppo_product.get("online_sample", {}) if ppo_product.get("publish_every") else None
    if online is not None:
        sections["ppo.online_sample"] = online
    task_problems = task_errors(task) + task_conflicts(sections, task) + section_truncation_errors(sections)
    for name in ("reward", "ppo", "sample"):
        configs[name] = task_fill(configs[name], task, library=name != "sample")
        configs["product"][name]["task"] = task_of(configs[name], task)  # what it was made for, truncate_text too
    errors = _library_config_errors(configs) + [f"sample: {e}" for e in sample_config_errors(configs["sample"])]
    if online is not None:
        ppo_product["online_sample"] = task_fill(online, task)
        errors += [f"online_sample: {e}" for e in sample_config_errors(ppo_product["online_sample"])]
    if task_problems or errors:  # every problem at once, the task's first
        task_text = ("Task definition: " + "; ".join(task_problems) + ". Set query and response lengths, temperature, "
                     "truncate_text and truncate_after once, in the training settings' \"task\" section. ")
        raise InvalidInput((task_text if task_problems else "") + ("Training settings: " + "; ".join(errors) + "."
                                                                   if errors else ""))
    with transaction.atomic():
        Project.objects.select_for_update().filter(id=project.id).first()  # one round start at a time
        if Round.objects.filter(project=project, status=Round.Status.RUNNING).exists():
            raise Conflict("A round is already running for this project.")
        labels = Label.objects.filter(comparison__project=project, skipped=False)
        snapshot = labels.aggregate(max_label_id=Max("id"))
        snapshot["count"] = labels.count()
        if not snapshot["count"]:
            raise InvalidInput("There are no labels to train on yet.")
        # The fit trains on train-split, non-calibration comparisons only (training/selectors/reward_fit.py).
        if not labels.filter(comparison__is_calibration=False, comparison__query__split=Query.Split.TRAIN).exists():
            raise InvalidInput("None of the labels is on a train-split comparison outside the calibration slice: "
                               "calibration comparisons and valid/test splits are never trained on.")
        number = (project.rounds.aggregate(n=Max("number"))["n"] or 0) + 1
        rnd = Round.objects.create(project=project, number=number, label_snapshot=snapshot, started_by=user)
        common = {"project": project, "base_model": configs["base_model"], "seed": configs["seed"],
                  "started_by": user, "round": rnd}
        product = {name: {**keys, "tripwires": configs["tripwires"]} for name, keys in configs["product"].items()}
        fit = run_create(kind=Kind.FIT_REWARD, config=configs["reward"],
                         product={**product["reward"], "label_snapshot": snapshot}, **common)
        ppo = run_create(kind=Kind.PPO, reward_run=fit, enqueue=False, config=configs["ppo"], product=product["ppo"],
                         **common)
        run_create(kind=Kind.SAMPLE, policy_run=ppo, enqueue=False, config=configs["sample"],
                   product=product["sample"], **common)
    return rnd


def round_run_ended(*, run_id: int) -> None:
    """Advance the run's round: enqueue what depended on a finished run, or end the round."""
    run = TrainingRun.objects.select_related("round").get(id=run_id)
    rnd = run.round
    if rnd is None:
        return
    with transaction.atomic():
        if run.status == Status.FINISHED:
            for nxt in rnd.runs.filter(status=Status.QUEUED, attempts=0).exclude(id=run.id):
                ready = all(dep is None or dep.status == Status.FINISHED for dep in (nxt.reward_run, nxt.policy_run))
                if ready and (nxt.reward_run_id == run.id or nxt.policy_run_id == run.id):
                    run_enqueue(run_id=nxt.id)
        statuses = set(rnd.runs.values_list("status", flat=True))
        if statuses == {Status.FINISHED}:
            ended = Round.Status.FINISHED
        elif Status.FAILED in statuses:
            ended = Round.Status.FAILED
        elif statuses & {Status.STOPPED, Status.ABORTED} and not statuses & {Status.RUNNING, Status.STOP_REQUESTED}:
            ended = Round.Status.STOPPED
        else:
            return
        Round.objects.filter(id=rnd.id, status=Round.Status.RUNNING).update(status=ended, finished_at=timezone.now())
