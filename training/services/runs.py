"""Creating, enqueuing and recording runs (metrics, checkpoints)."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

from django.conf import settings
from django.db import transaction

from labeling.errors import InvalidInput
from training.models import Checkpoint, RunMetric, TrainingRun
from training.services.task import run_task_conflicts


def run_enqueue(*, run_id: int) -> None:
    """Send the run's task once the surrounding transaction commits (no task for a rolled-back run)."""
    from training.tasks import run_execute_task  # local import: tasks import the services

    transaction.on_commit(lambda: run_execute_task.delay(run_id))


def config_split(values: dict) -> tuple[dict, dict]:
    """(library config, product keys) of one mixed dict, e.g. a project's `training_settings["ppo"]`."""
    product = {k: v for k, v in values.items() if k in TrainingRun.PRODUCT_KEYS}
    return {k: v for k, v in values.items() if k not in product}, product


def run_create(*, project, kind: str, base_model: str, config: dict | None = None, product: dict | None = None,
               seed: int = 0, started_by=None, round=None, reward_run=None, policy_run=None, total_steps: int = 0,
               enqueue: bool = True) -> TrainingRun:
    """A queued run; its task is enqueued on commit unless `enqueue` is False (rounds chain runs).
    `config` holds the library's keys and `product` the product's (PRODUCT_KEYS): a key in the other
    field is a caller's mistake, refused before the library would silently ignore it."""
    misplaced = sorted(set(config or {}) & {*TrainingRun.PRODUCT_KEYS, "report"})
    if misplaced:
        raise ValueError(f"Not library config: {', '.join(misplaced)} (pass product keys as product=).")
    unknown = sorted(set(product or {}) - set(TrainingRun.PRODUCT_KEYS))
    if unknown:
        raise ValueError(f"Not product keys: {', '.join(unknown)} (pass library keys as config=).")
    from training.services.andon import quarantine_check  # andon imports this module

    # A checkpoint the andon cord quarantined is never sampled, published or used as a base.
    quarantine_check(base_model=base_model, policy_run_id=policy_run.id if policy_run else None)
    # One task definition: a run never samples or scores responses of another shape than its inputs'.
    mixed = run_task_conflicts(kind=kind, config=config or {}, product=product, reward_run=reward_run,
                               policy_run=policy_run)
    if mixed:
        raise InvalidInput("Task definition: " + "; ".join(mixed) + ".")
    with transaction.atomic():
        run = TrainingRun.objects.create(
            project=project, kind=kind, base_model=base_model, config=config or {}, product=product or {}, seed=seed,
            started_by=started_by, round=round, reward_run=reward_run, policy_run=policy_run, total_steps=total_steps,
        )
        if enqueue:
            run_enqueue(run_id=run.id)
    return run


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def run_metrics_record(*, run_id: int, step: int, metrics: dict[str, float]) -> None:
    """Store one step's metrics (NaN and inf as null); a replayed step overwrites nothing."""
    rows = [RunMetric(run_id=run_id, step=step, key=key, value=_finite(value)) for key, value in metrics.items()
            if isinstance(value, (int, float))]
    RunMetric.objects.bulk_create(rows, ignore_conflicts=True)


def artifacts_path(run: TrainingRun) -> Path:
    return Path(settings.ARTIFACTS_DIR) / "runs" / f"run-{run.id}"


def folder_sha256(folder: Path) -> str:
    """A digest of every file's name and bytes in a checkpoint folder, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def checkpoint_record(*, run: TrainingRun, step: int, path: Path, metrics: dict | None = None,
                      is_final: bool = False) -> Checkpoint:
    """The Checkpoint row for a folder the trainer wrote atomically; idempotent per (run, step)."""
    checkpoint, _ = Checkpoint.objects.update_or_create(
        run=run, step=step,
        defaults={"path": str(path), "sha256": folder_sha256(path), "metrics": metrics or {}, "is_final": is_final},
    )
    return checkpoint
