"""Configs for reward fitting and PPO: dataclasses with documented fields, built from a run's stored
JSON (or a JSON/YAML file for the CLI) and checked once by ``validate()``.

Defaults follow the 2019 code (``PpoHParams``, ``RewardHParams``, ``AdaptiveKLParams``); the 2020
choices are options. Every field is plain JSON data, so ``dataclasses.asdict`` round-trips.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

if TYPE_CHECKING:  # configs are read by web processes too (a round checks its settings): torch only when used
    import torch

T = TypeVar("T")

ADAM_STYLES = ("tf", "torch")
LR_SCHEDULES = ("linear", "cosine", "constant")
READOUTS = ("last", "mean", "eot")  # RewardModel readouts (models.READOUTS)
PRECISIONS = ("fp32", "bf16-mixed", "fp16-mixed")  # see precision.py
RANKING_LOSSES = ("pairs", "plackett_luce")  # RewardFitConfig.ranking_loss: losses.ranking_loss, plackett_luce_loss
STRATEGIES = ("ddp", "fsdp")  # how PPO and reward fits spread over ranks (distributed.py); alone, plain training
DECODINGS = ("auto", "dynamic", "static", "cuda-graph")  # PPOConfig.decoding: how generation decodes (decoding.py)


class ConfigError(ValueError):
    """A config field has an invalid value; the message names every offending field, and ``fields`` maps
    each field name to its messages (a settings form shows them next to the field)."""

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.fields = fields or {}


@dataclass
class RewardFitConfig:
    """Reward model fitting (2019 ``train_reward.py``; 2020 options noted)."""

    model: str = "tiny"  # LM that initialises the reward trunk: "tiny", "tiny:<seed>", a hub id or a folder
    policy_model: str | None = None  # base policy rho sampled for normalisation; None = same as `model`
    query_length: int = 64  # query tokens kept (the last ones), left-padded
    response_length: int = 24  # response tokens kept (the first ones), right-padded
    batch_size: int = 32  # comparisons per optimiser step
    lr: float = 5e-5  # peak learning rate
    lr_schedule: str = "linear"  # "linear" to 0 over the run (2019), "cosine" (2020) or "constant"
    epochs: int = 1  # passes over the training comparisons (both papers: 1)
    adam_eps: float = 1e-5
    adam_style: str = "tf"  # "tf": epsilon outside the bias correction (2019); "torch": torch.optim.Adam
    valid_fraction: float = 0.1  # share of questions (Comparison.group) held out for valid/accuracy (2019 had none)
    # Before training (2019 `normalize_before`, on in its launched configs): gain and bias are fitted so the
    # fresh model's raw outputs on rho samples have mean 0 and population std 1; training then starts
    # from that scale. Off: training starts at gain 1, bias 0 (2020).
    normalize_before: bool = True
    # After training: "samples": mean 0 / std 1 on rho samples (2019 `normalize_after`); "references":
    # shift so reference texts average 0, keeping the gain (2020); "none": keep the gain and bias as
    # they are (those of the before-step, or 1 and 0).
    normalize: str = "samples"
    normalize_samples: int = 256  # rho samples scored by each normalisation step
    temperature: float = 1.0  # sampling temperature for the normalisation samples
    truncate_token: int | None = None  # token id that ends a response when found at index >= truncate_after
    truncate_after: int = 0
    sample_batch_size: int = 64  # rows per forward pass when sampling for normalisation
    seed: int = 1  # split, order, head init and sampling all derive from it
    log_every: int = 10  # call on_log every this many optimiser steps (and at the end)
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1"…
    # "fp32", "bf16-mixed" (bf16 autocast over fp32 weights and Adam state) or "fp16-mixed" (the same in fp16
    # with dynamic loss scaling); see precision.py.
    precision: str = "fp32"
    # On CUDA, fp32 matrix products (all of them under "fp32"; those outside autocast otherwise) may use TF32 tensor
    # cores: fp32 range, 10-bit mantissa inputs, fp32 sums; several times faster on Ampere and later GPUs. false =
    # full IEEE fp32. Sets torch's process-wide float32 matmul precision when training starts; nothing on CPU.
    tf32: bool = True
    dtype: str = "float32"  # retired: only "float32"; low-precision training is `precision` (bf16/fp16 → error)
    # Where the reward is read: "last" = the 2019 reward, the head on the final hidden state of the last
    # real token; "mean" = the mean of the head's output over the response's real tokens (for small models
    # whose last token cannot summarise the response; not in the papers); "eot" = the head at an end-of-text
    # token appended after the response (2020: stored texts lack it, the reward is read there). Saved with the model.
    readout: str = "last"
    # Memory (see README § Memory). Rows per forward+backward inside each optimiser batch, gradients accumulated
    # (the same step as the whole batch, within fp32 rounding); must divide batch_size. None = the whole batch.
    micro_batch_size: int | None = None
    # Recompute the trained trunk's activations in the backward pass instead of keeping them: less memory for
    # about one more forward per step; the same values and gradients (see README § Memory).
    gradient_checkpointing: bool = False
    # Pairs whose records carry the 2020 9-point confidence (Comparison.confidence) train on soft labels
    # (c - 1) / 8 (losses.pairwise_confidence_loss); the others, and valid/loss, stay Bradley-Terry on `best`.
    label_smoothing_from_confidence: bool = False
    # Records that carry a ranking of their K samples (Comparison.ranks) train on it instead of best-of-K: "pairs"
    # = every strictly ordered pair as Bradley-Terry, averaged per comparison (InstructGPT, losses.ranking_loss);
    # "plackett_luce" = the likelihood of the tiers best first, ties as Breslow (losses.plackett_luce_loss). Other
    # records, the train accuracy and valid/* stay on `best`.
    ranking_loss: str = "pairs"
    # With likert_coef > 0: add likert_coef times the pairwise ranking loss over the order one axis's 7-point
    # ratings imply (Comparison.likert, losses.likert_ranks: a higher rating ranks above, equal ratings tie), on
    # the records rated on that axis, weighed by their share of the batch. "" = no Likert term.
    likert_axis: str = ""
    likert_coef: float = 0.0  # the Likert term's weight; 0 = off (needs likert_axis when > 0)
    # > 0: add this times a binary cross-entropy saying whether the chosen sample's reward is above 0, the target
    # being "some sample is acceptable", on records whose project offered "none acceptable"
    # (Comparison.none_acceptable, losses.acceptability_loss), weighed by their share of the batch. It pins the
    # reward's offset while training; the after-step normalisation (`normalize`) then shifts it, so 0 is the
    # threshold only with normalize "none".
    acceptability_coef: float = 0.0
    # Over several ranks (torchrun): each rank fits on its share of every batch. "ddp" keeps a whole model on each
    # rank and averages gradients; "fsdp" shards each transformer block of the trunk over the ranks with PyTorch's
    # fully_shard (FSDP2), for models that do not fit one GPU. Alone, both are plain training (as PPOConfig.strategy).
    strategy: str = "ddp"
    # CLI only (python -m training.rlhf fit-reward):
    comparisons_path: str | None = None  # JSONL, 2019 layout {"query", "sample0".."sample{K-1}", "best"}
    references_path: str | None = None  # JSONL {"query", "reference"} for normalize="references"
    output_dir: str | None = None  # where the fitted reward model is saved
    metrics_path: str | None = None  # JSONL file that metrics are appended to

    def validate(self) -> RewardFitConfig:
        errors = _common_errors(self)
        if self.epochs < 1:
            errors.append(f"epochs must be >= 1, got {self.epochs}")
        if not 0.0 <= self.valid_fraction < 1.0:
            errors.append(f"valid_fraction must be in [0, 1), got {self.valid_fraction}")
        if self.normalize not in ("samples", "references", "none"):
            errors.append(f"normalize must be 'samples', 'references' or 'none', got {self.normalize!r}")
        if (self.normalize == "samples" or self.normalize_before) and self.normalize_samples < 2:
            errors.append(f"normalize_samples must be >= 2, got {self.normalize_samples}")
        if self.lr_schedule not in LR_SCHEDULES:
            errors.append(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.readout not in READOUTS:
            errors.append(f"readout must be one of {READOUTS}, got {self.readout!r}")
        errors += _chunk_errors(self, "micro_batch_size", self.batch_size, "batch_size")
        if self.ranking_loss not in RANKING_LOSSES:
            errors.append(f"ranking_loss must be one of {RANKING_LOSSES}, got {self.ranking_loss!r}")
        for name in ("likert_coef", "acceptability_coef"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                errors.append(f"{name} must be a finite number >= 0, got {value}")
        if self.likert_coef > 0 and not self.likert_axis.strip():
            errors.append(f"likert_axis must name the rated axis (e.g. 'overall') when likert_coef > 0, got "
                          f"{self.likert_axis!r}")
        if self.strategy not in STRATEGIES:
            errors.append(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        _raise(self, errors)
        return self


@dataclass
class PPOConfig:
    """PPO against a reward with a per-token KL penalty (2019 ``train_policy.py``; 2020 options)."""

    policy_model: str = "tiny"  # initial policy and frozen reference rho: "tiny[:seed]", hub id or folder
    reward: str = "builtin:lowercase"  # reward model folder, or "builtin:<name>" (see rewards.programmatic_reward)
    queries_path: str | None = None  # JSONL {"query": text or ids}; None = random byte queries (smoke runs)
    query_length: int = 16  # query tokens kept (the last ones), left-padded
    response_length: int = 16  # tokens sampled per response (fixed length, 2019)
    temperature: float = 1.0  # applied to pi, pi_old and rho alike
    truncate_token: int | None = None  # scoring cuts after this token at index >= truncate_after …
    truncate_after: int = 0
    penalty_reward_value: float = -1.0  # … and rows without one score this instead of the reward
    total_episodes: int = 2048  # episodes over the run; updates = ceil(total_episodes / batch_size)
    batch_size: int = 64  # episodes per PPO update, summed over ranks
    nminibatches: int = 1  # minibatches per epoch (per rank)
    noptepochs: int = 4  # PPO epochs per batch
    lr: float = 5e-6  # peak learning rate, decayed linearly to 0 over the updates
    lr_schedule: str = "linear"
    adam_eps: float = 1e-5
    adam_style: str = "tf"  # see RewardFitConfig.adam_style
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    whiten_rewards: bool = True  # rescale per-token rewards to unit variance, keeping their mean (2019)
    kl_coef: float = 0.2  # beta (the initial beta when adaptive)
    adaptive_kl: bool = False
    kl_target: float | None = None  # nats; required when adaptive_kl
    kl_horizon: int = 10000  # episodes
    value_model: str = (
        "shared"  # "shared": zero-init head on the policy trunk (2019); "separate": copy of the reward model (2020)
    )
    negate_score: bool = False  # debug: flip the score's sign (sign-flip tripwire test)
    seed: int = 1  # per-rank sampling seed = seed + 100003 * rank (2019)
    checkpoint_dir: str | None = None  # where checkpoints go; None = no checkpoints
    save_every: int = 0  # checkpoint every N updates (0 = only at the end and on stop)
    keep_checkpoints: int = 2  # newest checkpoints kept on disk
    stop_check_every: int = 8  # generation tokens between should_stop() checks
    device: str = "auto"
    precision: str = "fp32"  # see RewardFitConfig.precision
    tf32: bool = True  # see RewardFitConfig.tf32
    dtype: str = "float32"  # retired, see RewardFitConfig.dtype
    # Memory (see README § Memory). Rows per forward+backward inside each minibatch, gradients accumulated (the
    # same step as the whole minibatch, within fp32 rounding); must divide the per-rank minibatch. None = whole.
    micro_batch_size: int | None = None
    # Rows per no-grad forward in the rollout (generation, rho's log-probs, values, reward scoring); the
    # results do not depend on it. None = the whole per-rank batch at once.
    forward_batch_size: int | None = None
    # How the rollout decodes (decoding.py): "auto" decodes a GPT-2 policy over a static key/value cache, replayed
    # as a CUDA graph on CUDA ("cuda-graph"; "static" on CPU), and other models through transformers' growing cache
    # ("dynamic"). The samples are the same within fp32 rounding; only the speed differs.
    decoding: str = "auto"
    # Recompute activations in the backward pass (policy trunk and a separate value model): see RewardFitConfig.
    gradient_checkpointing: bool = False
    # Over several ranks (torchrun): "ddp" replicates the policy and averages gradients; "fsdp" shards each
    # transformer block of the policy (and of a separate value model) over the ranks with PyTorch's fully_shard
    # (FSDP2), for models that do not fit one GPU. Checkpoints are full models either way (from_pretrained).
    strategy: str = "ddp"
    metrics_path: str | None = None  # CLI only: JSONL file metrics are appended to
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes kept with the run

    @property
    def n_updates(self) -> int:
        return -(-self.total_episodes // self.batch_size)

    def validate(self, world_size: int = 1) -> PPOConfig:
        errors = _common_errors(self)
        for name in ("response_length", "total_episodes", "nminibatches", "noptepochs"):
            if getattr(self, name) < 1:
                errors.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % world_size:
            errors.append(f"batch_size {self.batch_size} must divide evenly over {world_size} ranks")
        elif (self.batch_size // world_size) % self.nminibatches:
            errors.append(f"nminibatches {self.nminibatches} must divide the per-rank batch "
                          f"({self.batch_size // world_size})")
        else:
            minibatch = self.batch_size // world_size // self.nminibatches
            if self.whiten_rewards and minibatch < 8:
                errors.append("whiten_rewards needs minibatches of >= 8 rows per rank (2019 rule)")
            errors += _chunk_errors(self, "micro_batch_size", minibatch, "the per-rank minibatch")
        errors += _chunk_errors(self, "forward_batch_size", None, "")
        if self.decoding not in DECODINGS:
            errors.append(f"decoding must be one of {DECODINGS}, got {self.decoding!r}")
        if self.kl_coef < 0:
            errors.append(f"kl_coef must be >= 0, got {self.kl_coef}")
        if self.adaptive_kl and (self.kl_target is None or self.kl_target <= 0):
            errors.append("adaptive_kl needs kl_target > 0 (nats)")
        if self.kl_horizon < 1:
            errors.append(f"kl_horizon must be >= 1, got {self.kl_horizon}")
        if self.strategy not in STRATEGIES:
            errors.append(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        elif world_size > 1 and self.strategy == "fsdp" and self.precision == "fp16-mixed":
            # torch's GradScaler cannot unscale FSDP2's DTensor gradients mixed with plain ones (seen in reward fits).
            errors.append("precision 'fp16-mixed' is not available with strategy 'fsdp' over several ranks: "
                          "use 'bf16-mixed' or strategy 'ddp'")
        if self.value_model not in ("shared", "separate"):
            errors.append(f"value_model must be 'shared' or 'separate', got {self.value_model!r}")
        if self.value_model == "separate" and self.reward.startswith("builtin:"):
            errors.append("value_model='separate' is initialised from a reward model, not a builtin reward")
        if not 0 < self.gamma <= 1:
            errors.append(f"gamma must be in (0, 1], got {self.gamma}")
        if not 0 <= self.lam <= 1:
            errors.append(f"lam must be in [0, 1], got {self.lam}")
        if self.lr_schedule not in LR_SCHEDULES:
            errors.append(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.save_every < 0:
            errors.append(f"save_every must be >= 0, got {self.save_every}")
        if self.keep_checkpoints < 1:
            errors.append(f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        _raise(self, errors)
        return self


def _common_errors(config: RewardFitConfig | PPOConfig) -> list[str]:
    errors = []
    for name in ("query_length", "batch_size", "seed"):
        if getattr(config, name) < (0 if name == "seed" else 1):
            errors.append(f"{name} must be positive, got {getattr(config, name)}")
    if config.response_length < 1:
        errors.append(f"response_length must be >= 1, got {config.response_length}")
    for name in ("lr", "adam_eps"):
        if getattr(config, name) <= 0:
            errors.append(f"{name} must be > 0, got {getattr(config, name)}")
    if config.temperature <= 0:
        errors.append(f"temperature must be > 0, got {config.temperature}")
    if config.adam_style not in ADAM_STYLES:
        errors.append(f"adam_style must be one of {ADAM_STYLES}, got {config.adam_style!r}")
    if config.precision not in PRECISIONS:
        errors.append(f"precision must be one of {PRECISIONS}, got {config.precision!r}")
    if config.dtype != "float32":
        # Pure low-precision training (weights and Adam state in bf16/fp16, no fp32 master weights) barely
        # moves the weights at small learning rates; mixed precision is the supported fast mode.
        mode = "fp16-mixed" if config.dtype == "float16" else "bf16-mixed"
        errors.append(
            f"dtype={config.dtype!r} (training in pure low precision) is no longer supported: keep dtype "
            f"'float32' and set precision={mode!r} (autocast over fp32 master weights)"
        )
    if config.truncate_after < 0 or config.truncate_after >= config.response_length:
        errors.append(f"truncate_after must be in [0, response_length), got {config.truncate_after}")
    return errors


def _chunk_errors(config: Any, name: str, whole: int | None, whole_name: str) -> list[str]:
    """A chunk size must be None or a positive int and, when ``whole`` is given, divide it."""
    value = getattr(config, name)
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return [f"{name} must be a positive integer or null, got {value!r}"]
    if whole is not None and whole % value:
        return [f"{name} {value} must divide {whole_name} ({whole}) evenly"]
    return []


def _raise(config: Any, errors: list[str]) -> None:
    if errors:
        raise ConfigError(f"invalid {type(config).__name__}: " + "; ".join(errors), _by_field(type(config), errors))


def _by_field(cls: type, errors: list[str]) -> dict[str, list[str]]:
    """Each message under the first field of ``cls`` it names (messages start with their field); "" for none."""
    names = {f.name for f in dataclasses.fields(cls)}
    fields: dict[str, list[str]] = {}
    for message in errors:
        words = re.findall(r"[a-z_]+", message)
        fields.setdefault(next((w for w in words if w in names), ""), []).append(message)
    return fields


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build a config from plain data; unknown keys are an error (typos must not pass silently)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} fields: {', '.join(unknown)}",
                          {name: [f"unknown field {name!r}{_did_you_mean(name, known)}"] for name in unknown})
    wrong = {name: [message] for name, value in data.items() if (message := _type_error(cls, name, value))}
    if wrong:
        raise ConfigError(f"invalid {cls.__name__}: " + "; ".join(m for ms in wrong.values() for m in ms), wrong)
    return cls(**data)


_TYPE_CHECKS = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
}


def _type_error(cls: type, name: str, value: Any) -> str | None:
    """A value of the wrong JSON type for the field's annotation ("int | None", "float", "dict[...]"…)."""
    annotation = str(next(f.type for f in dataclasses.fields(cls) if f.name == name))
    parts = [part.strip() for part in annotation.split("|")]
    if value is None:
        return None if "None" in parts else f"{name} must not be null"
    if parts[0].startswith("dict"):
        return None if isinstance(value, dict) else f"{name} must be a mapping"
    check = _TYPE_CHECKS.get(parts[0])
    if check is None or check[0](value):
        return None
    return f"{name} must be {check[1]}{' or null' if 'None' in parts else ''}, got {value!r}"


def _did_you_mean(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a JSON or YAML file (by suffix) into ``cls``; the caller validates."""
    text = Path(path).read_text()
    data = yaml.safe_load(text) if Path(path).suffix in (".yaml", ".yml") else json.loads(text)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config fields, got {type(data).__name__}")
    return config_from_dict(cls, data)


def resolve_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
