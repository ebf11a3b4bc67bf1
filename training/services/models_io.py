"""Where a run's models live on disk, and loading them for the Django side's executors."""
from __future__ import annotations

from pathlib import Path

from training.models import BASE_POLICY_SOURCE, Checkpoint, TrainingRun
from training.services.runs import artifacts_path


def final_checkpoint(run: TrainingRun) -> Checkpoint | None:
    return Checkpoint.objects.filter(run=run).order_by("-is_final", "-step").first()


def final_model_dir(run: TrainingRun) -> Path:
    """The folder a run's finished model is saved to (loadable with `from_pretrained`)."""
    return artifacts_path(run) / "final"


def task_truncate_token(run: TrainingRun) -> dict:
    """{"truncate_token": id} for a reward fit or PPO run whose task names a truncate_text (the base model's
    tokenizer turns it into the token id the library cuts at), else {}. Loads the tokenizer only then."""
    text = ((run.product or {}).get("task") or {}).get("truncate_text")
    if not text:
        return {}
    from training.rlhf.models import TINY
    from training.rlhf.task import truncate_token_of
    from training.rlhf.tokenizer import ByteTokenizer, load_tokenizer

    name = str(run.base_model)
    tokenizer = ByteTokenizer() if name == TINY or name.startswith(TINY + ":") else load_tokenizer(name)
    return {"truncate_token": truncate_token_of(tokenizer, text)}


def checkpoint_source_name(checkpoint: Checkpoint | None, run: TrainingRun | None) -> str:
    """How samples name the policy that wrote them: its checkpoint (or the base model)."""
    if checkpoint is None or run is None:
        return BASE_POLICY_SOURCE
    return checkpoint.name
