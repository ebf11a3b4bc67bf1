"""Pretrain a small GPT-2-shaped byte-level LM on a plain-text corpus, so that RLHF experiments start
from a base that writes words instead of byte noise.

    python -m training.rlhf pretrain CONFIG    # JSON or YAML PretrainConfig (cli.pretrain_main)

Documents come from a file or a folder of files: Debian ``fortunes`` files (entries separated by lines
holding only ``%``) or plain text (paragraphs separated by blank lines). Training draws contiguous
``block_size``-byte chunks from the documents joined with ``eos`` (so a document start follows an
``eos``, which is how queries are fed later), with AdamW and a warmup + cosine/linear schedule. The
run ends at ``max_steps`` or after ``max_seconds`` of wall time, whichever comes first; the schedule
follows whichever budget is further along, so a time-limited run still anneals. Checkpoints are atomic
(``checkpoint.save_checkpoint``) and a run resumes from ``checkpoint_dir``'s latest one. The result
is written with ``save_lm`` and loads with ``models.load_lm(folder)``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from transformers import PreTrainedModel

from training.rlhf.callbacks import Metrics, OnLog, ShouldStop
from training.rlhf.checkpoint import latest_checkpoint, save_checkpoint
from training.rlhf.config import LR_SCHEDULES, ConfigError, resolve_device
from training.rlhf.models import build_tiny, load_lm, save_lm
from training.rlhf.tokenizer import ByteTokenizer

MODEL_DIR = "model"
STATE_FILE = "pretrain_state.pt"
SKIPPED_SUFFIXES = (".dat", ".u8", ".pos", ".gz")  # fortune index files and strfile links


@dataclass
class PretrainConfig:
    """Byte-level LM pretraining (GPT-2 shape, dropout off)."""

    corpus_path: str | None = None  # a text file, or a folder whose regular files are read in name order
    output_dir: str | None = None  # where the final LM is saved (save_lm); loads with load_lm(output_dir)
    checkpoint_dir: str | None = None  # periodic atomic checkpoints; a run resumes from the latest one
    metrics_path: str | None = None  # CLI only: JSONL file metrics are appended to
    init_from: str | None = None  # continue from this LM folder (load_lm) instead of fresh weights;
    #                               its shape wins over n_layer / n_embd / n_head / n_positions
    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    block_size: int = 128  # bytes per training chunk (also the model's n_positions unless larger)
    n_positions: int = 256  # position embeddings: must cover query + response in later RLHF runs
    batch_size: int = 32  # chunks per optimiser step
    lr: float = 2e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # the schedule ends at lr * min_lr_ratio
    lr_schedule: str = "cosine"  # after warmup: "cosine", "linear" or "constant"
    warmup_steps: int = 50
    weight_decay: float = 0.1  # AdamW, on matrices (embeddings included), not on biases or norm gains
    grad_clip: float = 1.0  # max global grad norm (0 = off)
    max_steps: int = 2000
    max_seconds: float = 0.0  # wall-time budget for the training loop (0 = none)
    valid_fraction: float = 0.05  # share of documents held out for valid/loss
    eval_every: int = 100  # steps between validation passes (and at the end)
    eval_batches: int = 8  # fixed validation chunks = eval_batches * batch_size
    save_every: int = 0  # checkpoint every N steps when checkpoint_dir is set (0 = at the end only)
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    extra: dict = field(default_factory=dict)  # free-form notes kept with the run

    def validate(self) -> PretrainConfig:
        errors = []
        for name in ("n_layer", "n_embd", "n_head", "block_size", "batch_size", "max_steps", "eval_batches"):
            if getattr(self, name) < 1:
                errors.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_head >= 1 and self.n_embd % self.n_head:
            errors.append(f"n_embd {self.n_embd} must be divisible by n_head {self.n_head}")
        if self.n_positions < self.block_size:
            errors.append(f"n_positions {self.n_positions} must be >= block_size {self.block_size}")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            errors.append(f"need lr > 0 and 0 <= min_lr_ratio <= 1, got {self.lr}, {self.min_lr_ratio}")
        if self.lr_schedule not in LR_SCHEDULES:
            errors.append(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        for name in ("warmup_steps", "weight_decay", "grad_clip", "max_seconds", "save_every", "seed"):
            if getattr(self, name) < 0:
                errors.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.valid_fraction < 1:
            errors.append(f"valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if self.eval_every < 1 or self.log_every < 1:
            errors.append("eval_every and log_every must be >= 1")
        if errors:
            raise ConfigError("invalid PretrainConfig: " + "; ".join(errors))
        return self


@dataclass
class PretrainResult:
    lm: PreTrainedModel
    tokenizer: ByteTokenizer
    metrics: Metrics  # the last logged values (valid/loss, valid/bits_per_byte included)
    history: list[Metrics]
    stopped: bool  # should_stop() ended the run early


# --- corpus ------------------------------------------------------------------------------------


def split_documents(text: str) -> list[str]:
    """Fortune format (a line holding only ``%`` ends an entry) when such a line exists, else
    paragraphs separated by blank lines. Entries are stripped; empty ones dropped."""
    lines = text.replace("\r\n", "\n").split("\n")
    if any(line.strip() == "%" for line in lines):
        docs, current = [], []
        for line in lines:
            if line.strip() == "%":
                docs.append("\n".join(current))
                current = []
            else:
                current.append(line)
        docs.append("\n".join(current))
    else:
        docs, current = [], []
        for line in lines + [""]:
            if line.strip():
                current.append(line)
            elif current:
                docs.append("\n".join(current))
                current = []
    return [d.strip() for d in docs if d.strip()]


def corpus_files(path: str | Path) -> list[Path]:
    """``path`` itself, or the regular, non-hidden files of a folder (recursively, in name order),
    skipping symlinks and fortune index files (``.dat``, ``.u8``)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"corpus {path} is neither a file nor a folder")
    files = [
        p
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.is_symlink() and not p.name.startswith(".") and p.suffix not in SKIPPED_SUFFIXES
    ]
    if not files:
        raise FileNotFoundError(f"corpus folder {path} holds no text files")
    return files


def read_corpus(path: str | Path) -> list[str]:
    """Documents of a corpus file or folder (UTF-8; invalid bytes become U+FFFD)."""
    docs = []
    for file in corpus_files(path):
        docs.extend(split_documents(file.read_bytes().decode("utf-8", errors="replace")))
    if not docs:
        raise ValueError(f"corpus {path} holds no documents")
    return docs


def split_train_valid(docs: Sequence[str], valid_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded shuffle of the documents, the last ``valid_fraction`` (at least one) held out."""
    order = torch.randperm(len(docs), generator=torch.Generator().manual_seed(seed)).tolist()
    n_valid = max(1, int(round(len(docs) * valid_fraction)))
    if n_valid >= len(docs):
        raise ValueError(f"need at least 2 documents for a train/valid split, got {len(docs)}")
    return [docs[i] for i in order[n_valid:]], [docs[i] for i in order[:n_valid]]


def encode_stream(docs: Sequence[str], tokenizer: ByteTokenizer) -> Tensor:
    """All documents as one id stream, each preceded by ``eos``, (N,) long."""
    ids: list[int] = []
    for doc in docs:
        ids.append(tokenizer.eos_token_id)
        ids.extend(tokenizer.encode(doc))
    return torch.tensor(ids, dtype=torch.long)


def random_chunks(stream: Tensor, block_size: int, batch_size: int, generator: torch.Generator) -> Tensor:
    """``batch_size`` contiguous windows of ``block_size + 1`` ids at random offsets, (B, block+1)."""
    if stream.numel() < block_size + 1:
        raise ValueError(f"corpus has {stream.numel()} tokens, fewer than block_size + 1 = {block_size + 1}")
    starts = torch.randint(stream.numel() - block_size, (batch_size,), generator=generator)
    return torch.stack([stream[s : s + block_size + 1] for s in starts.tolist()])


def fixed_chunks(stream: Tensor, block_size: int, n: int) -> Tensor:
    """Up to ``n`` evenly spaced windows of ``block_size + 1`` ids (deterministic validation set)."""
    last = stream.numel() - block_size - 1
    if last < 0:
        raise ValueError(f"validation text has {stream.numel()} tokens, fewer than block_size + 1")
    starts = torch.linspace(0, last, steps=max(1, min(n, last + 1))).long().unique()
    return torch.stack([stream[s : s + block_size + 1] for s in starts.tolist()])


# --- training ----------------------------------------------------------------------------------


def lr_at(config: PretrainConfig, progress: float, step: int) -> float:
    """Linear warmup over ``warmup_steps``, then the schedule from lr down to lr * min_lr_ratio."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    low = config.lr * config.min_lr_ratio
    frac = min(max(progress, 0.0), 1.0)
    if config.lr_schedule == "cosine":
        return low + (config.lr - low) * 0.5 * (1.0 + math.cos(math.pi * frac))
    if config.lr_schedule == "linear":
        return config.lr - (config.lr - low) * frac
    return config.lr


def lm_loss(lm: PreTrainedModel, chunks: Tensor) -> Tensor:
    """Mean next-token cross-entropy (nats) of (B, L+1) chunks."""
    logits = lm(input_ids=chunks[:, :-1]).logits  # (B, L, V)
    return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), chunks[:, 1:].flatten())


@torch.no_grad()
def evaluate(lm: PreTrainedModel, chunks: Tensor, batch_size: int, device: torch.device) -> Metrics:
    """``valid/loss`` (nats per token) and ``valid/bits_per_byte`` on fixed chunks."""
    total, n = 0.0, 0
    for start in range(0, chunks.shape[0], batch_size):
        batch = chunks[start : start + batch_size].to(device)
        total += lm_loss(lm, batch).item() * batch.shape[0]
        n += batch.shape[0]
    loss = total / n
    return {"valid/loss": loss, "valid/bits_per_byte": loss / math.log(2)}


def make_adamw(lm: PreTrainedModel, config: PretrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not biases or layer-norm gains)."""
    decay = [p for p in lm.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in lm.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95))


def pretrain(
    config: PretrainConfig,
    documents: Sequence[str] | None = None,
    on_log: OnLog | None = None,
    should_stop: ShouldStop | None = None,
) -> PretrainResult:
    """Train a fresh byte-level GPT-2 (or continue ``config.init_from``) on ``documents`` (or
    ``config.corpus_path``) and return it.

    Saves to ``config.output_dir`` when set. Resumes from ``config.checkpoint_dir`` when it holds a
    checkpoint. With ``max_seconds=0`` the run is deterministic for ``config.seed``.
    """
    config.validate()
    device = resolve_device(config.device)
    if documents is None:
        if not config.corpus_path:
            raise ConfigError("pretrain needs documents or corpus_path")
        documents = read_corpus(config.corpus_path)
    train_docs, valid_docs = split_train_valid(documents, config.valid_fraction, config.seed)
    if config.init_from:
        lm, tokenizer = load_lm(config.init_from)
        if lm.config.n_positions < config.block_size:
            raise ConfigError(f"init_from {config.init_from} has n_positions {lm.config.n_positions}, "
                              f"fewer than block_size {config.block_size}")
        if not isinstance(tokenizer, ByteTokenizer):
            raise ConfigError(f"init_from {config.init_from} must use the byte tokenizer pretraining encodes with")
    else:
        lm, tokenizer = build_tiny(
            seed=config.seed,
            n_layer=config.n_layer,
            n_embd=config.n_embd,
            n_head=config.n_head,
            n_positions=config.n_positions,
        )
    lm = lm.to(device).train()  # dropout is 0 anyway; train() only for clarity
    train_stream = encode_stream(train_docs, tokenizer)
    valid_chunks = fixed_chunks(
        encode_stream(valid_docs, tokenizer), config.block_size, config.eval_batches * config.batch_size
    )
    optimizer = make_adamw(lm, config)
    generator = torch.Generator().manual_seed(config.seed + 1)
    step, elapsed_before = 0, 0.0
    resume = latest_checkpoint(config.checkpoint_dir) if config.checkpoint_dir else None
    if resume is not None:
        state = torch.load(resume / STATE_FILE, weights_only=True)
        resumed, _ = load_lm(resume / MODEL_DIR)
        lm.load_state_dict(resumed.state_dict())
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step, elapsed_before = int(state["step"]), float(state["elapsed_s"])

    history: list[Metrics] = []
    metrics: Metrics = {}
    running, count = 0.0, 0
    started = time.perf_counter()
    stopped = False

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - started

    def checkpoint() -> None:
        if config.checkpoint_dir:
            state = {
                "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(),
                "step": step,
                "elapsed_s": elapsed(),
            }

            def write(folder: Path) -> None:
                save_lm(lm, tokenizer, folder / MODEL_DIR)
                torch.save(state, folder / STATE_FILE)
                (folder / "config.json").write_text(json.dumps(asdict(config), indent=2))

            save_checkpoint(config.checkpoint_dir, step, write)

    def out_of_budget() -> bool:
        return step >= config.max_steps or (config.max_seconds > 0 and elapsed() >= config.max_seconds)

    while not out_of_budget():
        if should_stop is not None and should_stop():
            stopped = True
            break
        progress = step / config.max_steps
        if config.max_seconds > 0:
            progress = max(progress, elapsed() / config.max_seconds)
        lr = lr_at(config, progress, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = random_chunks(train_stream, config.block_size, config.batch_size, generator).to(device)
        loss = lm_loss(lm, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(lm.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        running += loss.item()
        count += 1
        last = out_of_budget()
        if step % config.log_every == 0 or step % config.eval_every == 0 or last:
            metrics = {"step": float(step), "train/loss": running / count, "train/lr": lr, "time/elapsed_s": elapsed()}
            running, count = 0.0, 0
            if step % config.eval_every == 0 or last:
                metrics.update(evaluate(lm, valid_chunks, config.batch_size, device))
            history.append(dict(metrics))
            if on_log is not None:
                on_log(dict(metrics))
        if config.save_every and step % config.save_every == 0 and not last:
            checkpoint()

    if "valid/loss" not in metrics or metrics.get("step") != float(step):
        metrics = {**metrics, "step": float(step), "time/elapsed_s": elapsed()}
        metrics.update(evaluate(lm, valid_chunks, config.batch_size, device))
        history.append(dict(metrics))
        if on_log is not None:
            on_log(dict(metrics))
    checkpoint()
    lm.eval()
    if config.output_dir:
        save_lm(lm, tokenizer, config.output_dir)
        (Path(config.output_dir) / "pretrain_metrics.json").write_text(json.dumps(metrics, indent=2))
    return PretrainResult(lm, tokenizer, metrics, history, stopped)
