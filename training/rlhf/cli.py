"""Command-line entry points, for offline experiments without Django:

    python -m training.rlhf.fit_reward CONFIG   # JSON or YAML RewardFitConfig
    python -m training.rlhf.ppo CONFIG          # JSON or YAML PPOConfig; torchrun works too

Both show a tqdm bar, append every metrics dict as one JSON line to ``metrics_path``, and end with
one summary line. PPO resumes from ``checkpoint_dir``'s latest checkpoint when there is one, and
SIGTERM/SIGINT make it checkpoint and stop at the next check.
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
from training.rlhf.callbacks import Metrics
from training.rlhf.checkpoint import latest_checkpoint
from training.rlhf.config import DTYPES, ConfigError, PPOConfig, RewardFitConfig, T, load_config, resolve_device
from training.rlhf.data import load_comparisons, load_queries, load_references
from training.rlhf.models import RewardModel, load_lm, load_policy
from training.rlhf.ppo import PPOTrainer, TrainResult
from training.rlhf.reward_model import fit
from training.rlhf.rewards import RewardFn, programmatic_reward
from training.rlhf.tokenizer import encode_queries

BUILTIN = "builtin:"


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
    """Fit a reward model from ``comparisons_path`` and save it to ``output_dir``."""
    config = _load(RewardFitConfig, argv, "python -m training.rlhf.fit_reward")
    if not config.comparisons_path or not config.output_dir:
        raise SystemExit("fit_reward needs comparisons_path and output_dir in the config")
    comparisons = load_comparisons(config.comparisons_path)
    references = load_references(config.references_path) if config.references_path else None
    metrics_file = MetricsFile(config.metrics_path)
    total = -(-(len(comparisons) - int(len(comparisons) * config.valid_fraction)) // config.batch_size) * config.epochs
    with StopFlag() as stop, tqdm(total=total, desc="fit_reward", unit="step", file=sys.stderr) as bar:

        def on_log(metrics: Metrics) -> None:
            metrics_file.write(metrics)
            bar.update(int(metrics["step"]) - bar.n)
            if "train/loss" in metrics:  # the step-0 line holds the normalize_before figures only
                bar.set_postfix(loss=f"{metrics['train/loss']:.3f}", acc=f"{metrics['train/accuracy']:.2f}")

        result = fit(config, comparisons, on_log=on_log, should_stop=stop, references=references)
    metrics_file.close()
    result.model.save_pretrained(config.output_dir, result.tokenizer)
    summary = {k: round(v, 4) for k, v in result.metrics.items()}
    print(f"fit_reward: {'stopped' if result.stopped else 'done'} saved={config.output_dir} {json.dumps(summary)}")
    return 0


def build_reward(config: PPOConfig, device: torch.device) -> tuple[RewardFn, RewardModel | None]:
    """A programmatic reward (``builtin:<name>``) or a frozen reward model loaded from a folder."""
    if config.reward.startswith(BUILTIN):
        return programmatic_reward(config.reward[len(BUILTIN) :]), None
    model, _ = RewardModel.from_pretrained(config.reward, dtype=DTYPES[config.dtype])
    model = model.to(device).requires_grad_(False).eval()
    return torch.no_grad()(model.score), model


def random_queries(n: int, length: int, seed: int) -> list[str]:
    """Seeded lowercase pseudo-words, for smoke runs without a query file."""
    generator = torch.Generator().manual_seed(seed)
    letters = "abcdefghijklmnopqrstuvwxyz     "
    picks = torch.randint(len(letters), (n, length), generator=generator).tolist()
    return ["".join(letters[i] for i in row) for row in picks]


def build_trainer(config: PPOConfig, should_stop=None) -> PPOTrainer:
    """Everything a PPO run needs, from the config alone (what the CLI and a resumed run use)."""
    device = dist.init_distributed(resolve_device(config.device))
    reward_fn, reward_model = build_reward(config, device)
    dtype = DTYPES[config.dtype]
    policy, tokenizer = load_policy(
        config.policy_model, reward_model if config.value_model == "separate" else None, dtype
    )
    ref_policy, _ = load_lm(config.policy_model, dtype=dtype)
    texts = (
        load_queries(config.queries_path)
        if config.queries_path
        else random_queries(1024, config.query_length, config.seed)
    )
    queries, query_mask = encode_queries(tokenizer, texts, config.query_length)
    return PPOTrainer(config, policy, ref_policy, reward_fn, queries, query_mask, tokenizer, should_stop=should_stop)


def ppo_main(argv: list[str] | None = None) -> int:
    """Train (or resume) a PPO run described by a config file."""
    config = _load(PPOConfig, argv, "python -m training.rlhf.ppo")
    with StopFlag() as stop:
        trainer = build_trainer(config, should_stop=stop)
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
