"""The library's command line (__main__.py runs `main`), for offline experiments without Django:

    python -m training.rlhf fit-reward CONFIG   # JSON or YAML RewardFitConfig; torchrun works too
    python -m training.rlhf ppo CONFIG          # JSON or YAML PPOConfig; torchrun works too
    python -m training.rlhf pretrain CONFIG     # JSON or YAML PretrainConfig

Each shows a tqdm bar, appends every metrics dict as one JSON line to ``metrics_path``, and ends with
one summary line. PPO and pretraining resume from ``checkpoint_dir``'s latest checkpoint when there is
one, and SIGTERM/SIGINT make each command checkpoint (or save) and stop at the next check.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from training.rlhf import distributed as dist
from training.rlhf.build import build_trainer
from training.rlhf.callbacks import Metrics
from training.rlhf.checkpoint import latest_checkpoint
from training.rlhf.config import ConfigError, PPOConfig, RewardFitConfig, T, load_config, resolve_device
from training.rlhf.task import task_write
from training.rlhf.data import load_comparisons, load_references
from training.rlhf.export import HF_SEQUENCE_CLASSIFICATION_DIR, export_beside
from training.rlhf.ppo import PPOTrainer, TrainResult
from training.rlhf.pretrain import PretrainConfig, pretrain
from training.rlhf.reward_model import fit, held_out_split
from training.rlhf.sampling import sample

PROG = "python -m training.rlhf"


class MetricsFile:
    """Appends one JSON object per line; flushed every write so a crash loses nothing logged."""

    def __init__(self, path: str | None) -> None:
        self.file = None
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a")

    def write(self, metrics: Metrics) -> None:
        if self.file is not None:
            self.file.write(json.dumps(metrics) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class StopFlag:
    """Within ``with``: SIGTERM/SIGINT become a cooperative stop request (handlers restored after)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested = False
        self.previous: dict[int, object] = {}

    def __enter__(self) -> StopFlag:
        self.previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def __call__(self) -> bool:
        return self.requested


def _load(cls: type[T], argv: list[str] | None, prog: str) -> T:
    """Parse ``CONFIG`` from argv and load and validate it; a bad config exits with its message."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="JSON or YAML config file")
    path = parser.parse_args(argv).config
    try:
        return load_config(cls, path).validate()
    except (ConfigError, OSError, ValueError) as error:
        raise SystemExit(f"{prog}: {path}: {error}") from error


def fit_reward_main(argv: list[str] | None = None) -> int:
    """Fit a reward model from ``comparisons_path`` and save it to ``output_dir``. Under torchrun every rank fits
    its share of each batch (``config.strategy``); rank 0 alone shows progress, writes the metrics, saves and prints."""
    config = _load(RewardFitConfig, argv, f"{PROG} fit-reward")
    if not config.comparisons_path or not config.output_dir:
        raise SystemExit("fit_reward needs comparisons_path and output_dir in the config")
    dist.init_distributed(resolve_device(config.device))  # torchrun: join the group now, to know the rank; else nothing
    is_main = dist.rank() == 0
    comparisons = load_comparisons(config.comparisons_path)
    references = load_references(config.references_path) if config.references_path else None
    metrics_file = MetricsFile(config.metrics_path if is_main else None)
    n_train = len(held_out_split(comparisons, config.valid_fraction, torch.Generator().manual_seed(config.seed))[0])
    total = -(-n_train // config.batch_size) * config.epochs
    with StopFlag() as stop, tqdm(total=total, desc="fit_reward", unit="step", file=sys.stderr,
                                  disable=not is_main) as bar:

        def on_log(metrics: Metrics) -> None:
            metrics_file.write(metrics)
            bar.update(int(metrics["step"]) - bar.n)
            if "train/loss" in metrics:  # the step-0 line holds the normalize_before figures only
                bar.set_postfix(loss=f"{metrics['train/loss']:.3f}", acc=f"{metrics['train/accuracy']:.2f}")

        result = fit(config, comparisons, on_log=on_log, should_stop=stop, references=references)
    metrics_file.close()
    if not result.main:  # another rank of a torchrun launch: rank 0 saves the whole model
        torch.distributed.destroy_process_group()
        return 0
    result.model.save_pretrained(config.output_dir, result.tokenizer)
    task_write(config.output_dir, config, result.tokenizer)
    skipped = export_beside(result.model, result.tokenizer, config.output_dir)
    summary = {k: round(v, 4) for k, v in result.metrics.items()}
    print(f"fit_reward: {'stopped' if result.stopped else 'done'} saved={config.output_dir} {json.dumps(summary)}")
    hf_folder = Path(config.output_dir) / HF_SEQUENCE_CLASSIFICATION_DIR
    print(f"fit_reward: hf-sequence-classification {f'skipped: {skipped}' if skipped else f'saved={hf_folder}'}")
    if dist.is_distributed():
        torch.distributed.destroy_process_group()
    return 0


def ppo_main(argv: list[str] | None = None) -> int:
    """Train (or resume) a PPO run described by a config file."""
    config = _load(PPOConfig, argv, f"{PROG} ppo")
    with StopFlag() as stop:
        try:
            trainer = build_trainer(config, should_stop=stop)
        except ConfigError as error:  # e.g. a reward model fitted for another task definition (task.json)
            raise SystemExit(f"{PROG} ppo: {error}") from error
        resume = latest_checkpoint(config.checkpoint_dir) if config.checkpoint_dir else None
        if resume is not None:
            trainer.load_checkpoint(resume)
        result = _train_with_progress(trainer, config)
    if dist.rank() == 0:
        last = result.metrics[-1] if result.metrics else {}
        print(
            f"ppo: {'stopped' if result.stopped else 'done'} step={result.step}/{config.n_updates}"
            f" resumed_from={resume.name if resume else None}"
            f" score={last.get('objective/score', float('nan')):.4f} kl={last.get('objective/kl', float('nan')):.4f}"
            f" checkpoint={result.checkpoint}"
        )
    if dist.is_distributed():
        torch.distributed.destroy_process_group()
    return 0


def _train_with_progress(trainer: PPOTrainer, config: PPOConfig) -> TrainResult:
    is_main = dist.rank() == 0
    metrics_file = MetricsFile(config.metrics_path if is_main else None)
    with tqdm(
        total=config.n_updates,
        initial=trainer.step_count,
        desc="ppo",
        unit="update",
        disable=not is_main,
        file=sys.stderr,
    ) as bar:

        def on_step(metrics: Metrics) -> bool:
            metrics_file.write(metrics)
            bar.update(1)
            bar.set_postfix(score=f"{metrics['objective/score']:.3f}", kl=f"{metrics['objective/kl']:.2f}")
            return True

        result = trainer.train(on_step)
    metrics_file.close()
    return result


def pretrain_main(argv: list[str] | None = None) -> int:
    """Pretrain a small byte-level LM (pretrain.py), save it to ``output_dir``, print a summary and three samples."""
    prog = f"{PROG} pretrain"
    config = _load(PretrainConfig, argv, prog)
    if not config.corpus_path or not config.output_dir:
        raise SystemExit(f"{prog}: pretrain needs corpus_path and output_dir in the config")
    metrics_file = MetricsFile(config.metrics_path)
    with StopFlag() as stop, tqdm(total=config.max_steps, desc="pretrain", unit="step", file=sys.stderr) as bar:

        def on_log(metrics: Metrics) -> None:
            metrics_file.write(metrics)
            bar.update(int(metrics["step"]) - bar.n)
            bar.set_postfix(loss=f"{metrics['train/loss']:.3f}" if "train/loss" in metrics else "")

        result = pretrain(config, on_log=on_log, should_stop=stop)
    metrics_file.close()
    summary = {k: round(v, 4) for k, v in result.metrics.items()}
    print(f"pretrain: {'stopped' if result.stopped else 'done'} saved={config.output_dir} {json.dumps(summary)}")
    eos = [result.tokenizer.eos_token_id]
    for row in sample(result.lm, result.tokenizer, [eos] * 3, 1, response_length=96, query_length=1, seed=config.seed):
        print("sample:", json.dumps(row[0].text))
    return 0


COMMANDS = {"fit-reward": fit_reward_main, "ppo": ppo_main, "pretrain": pretrain_main}


def main(argv: list[str] | None = None) -> int:
    """``python -m training.rlhf COMMAND CONFIG``: one entry point, so no library module doubles as a script."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("config", help="JSON or YAML config file")
    args = parser.parse_args(argv)
    return COMMANDS[args.command]([args.config])
