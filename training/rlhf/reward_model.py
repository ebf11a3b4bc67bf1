"""Reward model fitting from K-way comparisons (2019 ``train_reward.py``), then normalisation.

``fit`` first (2019 ``normalize_before``) sets the fresh model's gain and bias so its raw outputs on
samples of the base policy rho have mean 0 and std 1, trains the scalar head plus the LM trunk for one
epoch (by default) with Adam and a linear learning-rate decay, reports ``train/*`` and ``valid/*``
metrics through ``on_log``, then sets gain and bias again so rho's samples score mean 0, std 1 (2019
``normalize_after``) or reference texts average 0 (2020 option).

Under torchrun (``torch.distributed`` initialised with several ranks) ``fit`` splits every batch over the ranks
(``_Ranks``, ``config.strategy`` "ddp" or "fsdp"); with one process nothing of that runs.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from training.rlhf import distributed as dist
from training.rlhf.callbacks import Metrics, OnLog, ShouldStop, StopRequested
from training.rlhf.config import ConfigError, RewardFitConfig, resolve_device
from training.rlhf.data import Comparison, Text
from training.rlhf.losses import (
    acceptability_loss,
    best_of_k_loss,
    likert_ranks,
    pairwise_confidence_loss,
    plackett_luce_loss,
    ranking_loss,
)
from training.rlhf.models import RewardModel, enable_gradient_checkpointing, load_lm, transformer_blocks
from training.rlhf.oom import out_of_memory_advice
from training.rlhf.optim import make_optimizer, scheduled_lr, set_lr
from training.rlhf.precision import accumulate, allow_tf32, autocast, frozen_dtype, make_scaler
from training.rlhf.precision import step as optimizer_step
from training.rlhf.rewards import fit_normalization
from training.rlhf.sampling import generate, truncation_mask
from training.rlhf.tokenizer import Tokenizer, as_ids, pad_left, pad_right


@dataclass
class FitResult:
    """A fitted (and normalised, unless stopped early) reward model and what was measured."""

    model: RewardModel
    tokenizer: Tokenizer
    metrics: Metrics  # the final values of every metric key
    history: list[Metrics] = field(default_factory=list)  # everything passed to on_log, in order
    stopped: bool = False  # True when should_stop() ended training early (no normalisation then)
    # Under torchrun: True on rank 0 only, the one rank that saves ``model`` (under FSDP the only rank whose
    # ``model`` is whole: the gathered weights, on the CPU; the other ranks hold their shards). True when alone.
    main: bool = True


@dataclass
class EncodedComparisons:
    queries: Tensor  # (N, Lq) left-padded
    query_mask: Tensor  # (N, Lq)
    samples: Tensor  # (N, K, Lr) right-padded
    sample_mask: Tensor  # (N, K, Lr)
    best: Tensor  # (N,)
    confidence: Tensor | None = None  # (N,) K=2: the 9-point scale, canonical; 0 where a record has none
    # The optional answer parts, each None when no record has it (a best-of-K fit carries nothing new):
    ranks: Tensor | None = None  # (N, K) Comparison.ranks, 1 = best; 0 in rows without a ranking
    likert: Tensor | None = None  # (N, K) ratings 1..7 on the fit's likert_axis; 0 in rows not rated on it
    none_acceptable: Tensor | None = None  # (N,) 1 none acceptable, 0 some acceptable, -1 not offered

    def __len__(self) -> int:
        return self.best.shape[0]

    def take(self, index: Tensor) -> EncodedComparisons:
        def rows(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[index]

        return EncodedComparisons(
            *(t[index] for t in (self.queries, self.query_mask, self.samples, self.sample_mask, self.best)),
            confidence=rows(self.confidence), ranks=rows(self.ranks), likert=rows(self.likert),
            none_acceptable=rows(self.none_acceptable),
        )


def encode_comparisons(
    comparisons: Sequence[Comparison], tokenizer: Tokenizer, query_length: int, response_length: int,
    likert_axis: str = "",
) -> EncodedComparisons:
    """Tokenise and pad comparison records; every record must have the same K. ``likert_axis``: the Likert axis
    whose ratings are carried (``RewardFitConfig.likert_axis``); "" carries none."""
    ks = {len(c.samples) for c in comparisons}
    if len(ks) != 1:
        raise ValueError(f"all comparisons must have the same number of samples, got K in {sorted(ks)}")
    (k,) = ks
    pad = tokenizer.pad_token_id
    queries, query_mask = pad_left([as_ids(tokenizer, c.query) for c in comparisons], query_length, pad)
    flat = [as_ids(tokenizer, s) for c in comparisons for s in c.samples]
    samples, sample_mask = pad_right(flat, response_length, pad)
    n = len(comparisons)
    best = torch.tensor([c.best for c in comparisons], dtype=torch.long)
    confidence = torch.tensor([c.confidence or 0 for c in comparisons], dtype=torch.long)
    absent = [0] * k
    ranks = likert = none_acceptable = None
    if any(c.ranks is not None for c in comparisons):
        ranks = torch.tensor([list(c.ranks) if c.ranks is not None else absent for c in comparisons],
                             dtype=torch.long)
    if likert_axis and any(likert_axis in (c.likert or {}) for c in comparisons):
        likert = torch.tensor([list((c.likert or {}).get(likert_axis, absent)) for c in comparisons],
                              dtype=torch.long)
    if any(c.none_acceptable is not None for c in comparisons):
        none_acceptable = torch.tensor(
            [-1 if c.none_acceptable is None else int(c.none_acceptable) for c in comparisons], dtype=torch.long)
    return EncodedComparisons(
        queries, query_mask, samples.view(n, k, response_length), sample_mask.view(n, k, response_length), best,
        confidence=confidence if bool((confidence > 0).any()) else None,
        ranks=ranks, likert=likert, none_acceptable=none_acceptable,
    )


RANKING_LOSSES = {"pairs": ranking_loss, "plackett_luce": plackett_luce_loss}  # RewardFitConfig.ranking_loss


def comparison_loss(rewards: Tensor, batch: EncodedComparisons, config: RewardFitConfig) -> Tensor:
    """The training loss of ``batch`` (rewards: (B, K)): the mean over its rows of their choice term, plus the
    optional terms:

    - choice: rows that carry a ranking train on ``config.ranking_loss`` (``ranking_loss`` or
      ``plackett_luce_loss``); the others on ``best_of_k_loss``, or with ``config.label_smoothing_from_confidence``
      on pairs that carry a confidence, ``pairwise_confidence_loss`` (soft labels ``(c - 1) / 8``; a pair
      without one counts as sure of its ``best``, which is the same Bradley-Terry term).
    - ``likert_coef * ranking_loss`` over ``likert_ranks`` of the ``likert_axis`` ratings, on the rated rows
      (rows whose ratings all tie say nothing and count as unrated).
    - ``acceptability_coef * acceptability_loss`` of the best samples' rewards, on rows whose project offered
      "none acceptable".

    Each part is the mean over its own rows weighed by their share of the batch, i.e. a sum of per-row terms over
    B: a batch of one kind is exactly that loss, and micro-batches (weighted by their share of rows in
    ``_batch_step``) add up to the whole batch's loss and gradient whichever rows they hold.
    """
    best = batch.best.to(rewards.device)
    n = best.shape[0]
    confidence = None if batch.confidence is None else batch.confidence.to(rewards.device)
    if batch.ranks is None:
        loss = _choice_loss(rewards, best, confidence, config)
    else:
        ranks = batch.ranks.to(rewards.device)
        ranked = ranks[:, 0] > 0  # (B,) rows with a ranking (a rank is >= 1)
        n_ranked = int(ranked.sum())
        loss = rewards.new_zeros(())
        if n_ranked:
            loss = loss + RANKING_LOSSES[config.ranking_loss](rewards[ranked], ranks[ranked]) * (n_ranked / n)
        if n_ranked < n:
            rest = ~ranked
            rest_confidence = None if confidence is None else confidence[rest]
            loss = loss + _choice_loss(rewards[rest], best[rest], rest_confidence, config) * ((n - n_ranked) / n)
    if config.likert_coef and config.likert_axis and batch.likert is not None:
        ratings = batch.likert.to(rewards.device)
        rated = ratings[:, 0] > 0  # (B,) rows rated on the axis
        ranks = likert_ranks(ratings[rated])  # (R, K)
        informative = (ranks.amax(dim=-1) > 1).sum()  # rows ranking_loss averages over (not all tied)
        # ranking_loss is 0 (still in the graph) when no rated row orders anything.
        loss = loss + config.likert_coef * ranking_loss(rewards[rated], ranks) * (informative / n)
    if config.acceptability_coef and batch.none_acceptable is not None:
        answer = batch.none_acceptable.to(rewards.device)
        asked = answer >= 0  # (B,)
        n_asked = int(asked.sum())
        if n_asked:
            best_rewards = rewards.gather(-1, best.unsqueeze(-1)).squeeze(-1)  # (B,)
            term = acceptability_loss(best_rewards[asked], answer[asked] == 1)
            loss = loss + config.acceptability_coef * term * (n_asked / n)
    return loss


def _choice_loss(rewards: Tensor, best: Tensor, confidence: Tensor | None, config: RewardFitConfig) -> Tensor:
    """best-of-K on ``best``, or the 9-point soft labels on pairs (see ``comparison_loss``)."""
    if not config.label_smoothing_from_confidence or confidence is None or rewards.shape[-1] != 2:
        return best_of_k_loss(rewards, best)
    confidence = torch.where(confidence > 0, confidence, 1 + 8 * best)
    return pairwise_confidence_loss(rewards, confidence)


def _check_answer_parts(config: RewardFitConfig, comparisons: Sequence[Comparison]) -> None:
    """A term the config asks for that no record can feed would do nothing, silently: say so instead."""
    if config.likert_coef and not any(config.likert_axis in (c.likert or {}) for c in comparisons):
        found = sorted({axis for c in comparisons for axis in (c.likert or {})})
        raise ValueError(f"likert_axis={config.likert_axis!r}: no comparison is rated on it (likert_coef is "
                         f"{config.likert_coef}); the records' axes: {', '.join(found) or 'none'}")
    if config.acceptability_coef and all(c.none_acceptable is None for c in comparisons):
        raise ValueError(f"acceptability_coef={config.acceptability_coef}: no comparison says whether a sample "
                         "was acceptable (Comparison.none_acceptable; the project does not offer 'none acceptable')")


def comparison_rewards(model: RewardModel, batch: EncodedComparisons, device: torch.device) -> Tensor:
    """Normalised rewards of every sample, the query computed once per comparison, -> (B, K)."""
    return model.score_k(
        batch.queries.to(device), batch.query_mask.to(device), batch.samples.to(device), batch.sample_mask.to(device)
    )


def held_out_split(
    comparisons: Sequence[Comparison], valid_fraction: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """(train rows, held-out rows): a seeded permutation of the groups, the first ``valid_fraction`` of
    them held out, so the labels of one question never land on both sides (held-out accuracy would be
    optimistic). Rows with ``group=None`` are their own group; then this is a permutation of the rows."""
    rows: dict[object, list[int]] = {}
    for i, c in enumerate(comparisons):
        rows.setdefault(("group", c.group) if c.group is not None else ("row", i), []).append(i)
    groups = list(rows.values())
    order = torch.randperm(len(groups), generator=generator).tolist()
    n_valid = int(len(groups) * valid_fraction)
    valid = [i for g in order[:n_valid] for i in groups[g]]
    train = [i for g in order[n_valid:] for i in groups[g]]
    return torch.tensor(train, dtype=torch.long), torch.tensor(valid, dtype=torch.long)


def fit(
    config: RewardFitConfig,
    comparisons: Sequence[Comparison],
    on_log: OnLog | None = None,
    should_stop: ShouldStop | None = None,
    references: Sequence[tuple[Text, Text]] | None = None,
    base_samples: Sequence[tuple[Text, Text]] | None = None,
) -> FitResult:
    """Fit a reward model from ``comparisons`` and normalise it; deterministic for ``config.seed``.

    With ``normalize_before``, ``on_log`` first receives ``step`` 0 with ``normalization_before/gain``,
    ``/bias``, ``/raw_mean``, ``/raw_std`` (population) and ``/samples``. Then ``on_log(metrics)``
    receives ``train/loss``, ``train/accuracy`` (running means since the last call), ``train/lr`` and
    ``step`` every ``log_every`` steps; the last call adds ``valid/accuracy`` and ``valid/loss`` (when
    ``valid_fraction`` of the comparisons' groups leaves any, see ``held_out_split``) and
    ``normalization/gain``/``bias``. ``should_stop()`` is checked before every step (and during
    normalisation sampling); when it turns true the model is returned
    without the after-step, with ``stopped=True``. ``references`` (query, reference) pairs are
    required for ``normalize="references"``. ``base_samples`` (query, response) pairs written by rho
    are what the before-step scores (the first ``normalize_samples`` of them); without them it
    samples rho itself on the comparisons' queries. Out of accelerator memory: ``OutOfMemory`` naming the
    settings to change (oom.py). A Likert or acceptability term (``likert_coef``, ``acceptability_coef``) that no
    record can feed is a ValueError before anything loads: it would silently change nothing.

    Under torchrun (``torch.distributed`` initialised, or ``WORLD_SIZE`` > 1: the process group is joined here)
    every rank must call ``fit`` with the same arguments. Each rank trains on its contiguous share of every batch
    (the global batch, order and learning-rate schedule are those of one process), gradients are averaged
    (``config.strategy``: "ddp" whole models, "fsdp" the trunk's blocks sharded, see ``_Ranks``), the metrics are
    those of the whole batch on every rank, the held-out rows are split over the ranks and their sums added, and
    every rank gets rank 0's gain and bias. Only rank 0 calls ``on_log`` and ``should_stop``; its stop ends every
    rank at the same point. Only the result with ``main`` (rank 0) is meant to be saved.
    """
    with out_of_memory_advice(config, "reward model fitting"):
        return _fit(config, comparisons, on_log, should_stop, references, base_samples)


def _fit(
    config: RewardFitConfig,
    comparisons: Sequence[Comparison],
    on_log: OnLog | None,
    should_stop: ShouldStop | None,
    references: Sequence[tuple[Text, Text]] | None,
    base_samples: Sequence[tuple[Text, Text]] | None,
) -> FitResult:
    config.validate()
    _check_answer_parts(config, comparisons)
    device = dist.init_distributed(resolve_device(config.device))  # alone (no WORLD_SIZE > 1): the device as is
    allow_tf32(config.tf32, device)
    generator = torch.Generator().manual_seed(config.seed)
    lm, tokenizer = load_lm(config.model)  # fp32 master weights; `precision` sets the compute dtype
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(lm)
    model = RewardModel(lm, head_seed=config.seed, readout=config.readout)
    ranks: _Ranks | None = None
    if dist.world_size() > 1:  # torchrun: every rank built the same model (same seeds); split the work
        ranks = _Ranks(config, device, model, should_stop)  # before .to(device): FSDP's whole copy stays on the CPU
        should_stop = ranks.should_stop
        on_log = on_log if ranks.rank == 0 else None
    model = model.to(device)
    if ranks is not None:
        ranks.shard(model)

    def result(metrics: Metrics, stopped: bool = False) -> FitResult:
        if ranks is None:
            return FitResult(model, tokenizer, metrics, history, stopped=stopped)
        return ranks.result(model, tokenizer, metrics, history, stopped)

    data = encode_comparisons(comparisons, tokenizer, config.query_length, config.response_length,
                              config.likert_axis if config.likert_coef else "")

    # 1. Split: a fixed share of the questions is held out for validation accuracy, all labels of one on one side.
    train_rows, valid_rows = held_out_split(comparisons, config.valid_fraction, generator)
    valid, train = data.take(valid_rows), data.take(train_rows)
    if len(train) == 0:
        raise ValueError(f"no training comparisons left out of {len(data)} after the validation split")

    # 2. Before training (2019 normalize_before): the fresh model's raw outputs on rho's samples get
    #    mean 0, std 1, so training starts from the scale the after-step will restore.
    history: list[Metrics] = []
    before: Metrics = {}
    if config.normalize_before:
        try:
            with autocast(config.precision, device):
                before = _normalize_before(model, tokenizer, config, data, base_samples, should_stop, device)
        except StopRequested:
            return result({}, stopped=True)
        if ranks is not None:
            before = ranks.agree_before(model, before)
        _emit(on_log, history, {"step": 0.0, **before})

    # 3. Train: each comparison used once per epoch, learning rate decayed over all steps.
    optimizer = make_optimizer(model.parameters(), config.lr, config.adam_eps, config.adam_style)
    scaler = make_scaler(config.precision, device)  # fp16-mixed only; a pass-through otherwise
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    # Running sums stay on the device: no host sync per step, only at each log.
    zero = torch.zeros((), dtype=torch.float64, device=device)
    running = {"loss": zero, "correct": zero, "count": 0}
    metrics: Metrics = {}
    step = 0
    for _ in range(config.epochs):
        perm = torch.randperm(len(train), generator=generator)
        for start in range(0, len(train), config.batch_size):
            if should_stop is not None and should_stop():
                return result({**before, **metrics}, stopped=True)
            batch = train.take(perm[start : start + config.batch_size])
            lr = scheduled_lr(config.lr, step, total_steps, config.lr_schedule)
            set_lr(optimizer, lr)
            n = len(batch)
            if ranks is None:
                rewards, loss = _batch_step(model, batch, optimizer, scaler, config, device)
                loss_sum = loss.detach() * n
                correct = (rewards.detach().argmax(-1) == batch.best.to(device)).sum()
            else:  # this rank's rows only: the sums over ranks are taken at each log
                loss_sum, correct = ranks.batch_step(model, batch, optimizer, scaler, config)
            step += 1
            running["loss"] = running["loss"] + loss_sum
            running["correct"] = running["correct"] + correct
            running["count"] += n
            if step % config.log_every == 0 or step == total_steps:
                loss_total, correct_total = float(running["loss"]), float(running["correct"])
                if ranks is not None:  # every rank's rows: the same totals on every rank
                    totals = dist.sum_over_ranks({"loss": loss_total, "correct": correct_total}, device)
                    loss_total, correct_total = totals["loss"], totals["correct"]
                metrics = {
                    "step": float(step),
                    "train/loss": loss_total / running["count"],
                    "train/accuracy": correct_total / running["count"],
                    "train/lr": lr,
                }
                running = {"loss": zero, "correct": zero, "count": 0}
                if step < total_steps:
                    _emit(on_log, history, metrics)

    # 4. Validate, then normalise so the KL coefficient keeps its meaning across reward models.
    with autocast(config.precision, device):
        if ranks is None:
            metrics.update(evaluate(model, valid, device, config.batch_size))
        else:
            metrics.update(ranks.evaluate(model, valid, config.batch_size))
    try:
        with autocast(config.precision, device):
            gain, bias = _normalize(model, tokenizer, config, data, references, should_stop, device)
    except StopRequested:
        _emit(on_log, history, metrics)
        return result({**before, **metrics}, stopped=True)
    if ranks is not None:
        gain, bias = ranks.agree(model, gain, bias)
    metrics["normalization/gain"], metrics["normalization/bias"] = gain, bias
    _emit(on_log, history, metrics)
    return result({**before, **metrics})


def _batch_step(
    model: RewardModel,
    batch: EncodedComparisons,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    config: RewardFitConfig,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """One optimiser step on ``batch``, in micro-batches of ``config.micro_batch_size`` comparisons whose
    gradients add up: each micro-batch's mean loss is weighted by its share of the batch's rows, so the
    accumulated gradient is the whole batch's. Returns the detached rewards (B, K) and the batch's mean loss."""
    n = len(batch)
    micro = config.micro_batch_size or n
    optimizer.zero_grad(set_to_none=True)
    rewards, loss_sum = [], torch.zeros((), device=device)
    for start in range(0, n, micro):
        part = batch.take(torch.arange(start, min(start + micro, n)))
        with autocast(config.precision, device):
            part_rewards = comparison_rewards(model, part, device)  # (m, K), fp32 (the head's output is upcast)
        loss = comparison_loss(part_rewards, part, config) * (len(part) / n)
        accumulate(loss, scaler)
        rewards.append(part_rewards.detach())
        loss_sum = loss_sum + loss.detach()
    optimizer_step(optimizer, scaler)
    return torch.cat(rewards), loss_sum


class _Ranks:
    """Reward fitting over the ranks of a torchrun launch (built by ``_fit`` only when there are several).

    Every rank holds the same data, split, order and seeds; of each batch of n rows rank r trains on the r-th
    contiguous slice of ``torch.tensor_split`` (the first n % W ranks one row more), its loss weighted by W times
    its share of the batch, so the gradient averaged over ranks is the whole batch's, as alone. "ddp": every rank
    keeps the whole model and the gradients are averaged in one flat all-reduce before the step (``fit`` scores
    through ``score_k``, not ``forward``, so DDP's module wrapper would not see the passes). "fsdp": each block of
    the trunk is sharded (``distributed.shard_blocks``, FSDP2, reduce-scattered in every backward) and the
    parameters left whole (embeddings, final norm, head) are averaged the same way.
    """

    def __init__(
        self, config: RewardFitConfig, device: torch.device, model: RewardModel, should_stop: ShouldStop | None
    ) -> None:
        self.rank, self.world, self.device = dist.rank(), dist.world_size(), device
        self.fsdp = config.strategy == "fsdp"
        if self.fsdp and config.precision == "fp16-mixed":  # every rank raises here, before any collective
            message = ("precision 'fp16-mixed' is not available with strategy 'fsdp' over several ranks (the loss "
                       "scaler cannot unscale sharded gradients): use 'bf16-mixed', or strategy 'ddp'")
            raise ConfigError(message, {"precision": [message]})
        self.template: RewardModel | None = None  # FSDP, rank 0: an unsharded CPU copy the gathered weights go into
        if self.fsdp and self.rank == 0:
            self.template = _plain_copy(model)
        self.whole: list[torch.nn.Parameter] = []  # the trainable parameters whose gradients are all-reduced here
        self._ask = should_stop
        # Every rank must make the same collective calls, so whether anyone asks is agreed once.
        self._asks = dist.any_rank(should_stop is not None, device)

    def shard(self, model: RewardModel) -> None:
        """Shard the blocks (FSDP) once the model is on its device; list what stays whole."""
        if self.fsdp:
            self.whole = dist.shard_blocks(model, self.device)  # resharded after no-grad passes (shard_blocks)
        else:
            self.whole = [p for p in model.parameters() if p.requires_grad]

    @property
    def should_stop(self) -> ShouldStop | None:
        if not self._asks:
            return None

        def stop() -> bool:  # only rank 0 asks; every rank learns the answer, so all stop at the same point
            local = self.rank == 0 and self._ask is not None and bool(self._ask())
            return dist.any_rank(local, self.device)

        return stop

    def rows(self, n: int) -> Tensor:
        """This rank's rows of a batch of ``n`` (possibly none when n < W)."""
        return torch.tensor_split(torch.arange(n), self.world)[self.rank]

    def part(self, batch: EncodedComparisons, rows: Tensor) -> EncodedComparisons:
        """``rows`` of ``batch``; no rows: a stand-in of its first row, run with weight 0, so that this rank still
        makes every collective the others make (FSDP gathers and reduces in each pass, the gradients are reduced)."""
        return batch.take(rows if len(rows) else torch.arange(1))

    def rewards(self, model: RewardModel, batch: EncodedComparisons) -> Tensor:
        """(B, K) rewards. A sharded block's weights are gathered when the block is called, which the packed GPT-2
        path (``score_k``) bypasses: FSDP scores through the query's key/value cache (``score_k_cached``, equal up
        to float rounding), or, with gradient checkpointing (which a cache turns off), each sample on its own."""
        if not self.fsdp:
            return comparison_rewards(model, batch, self.device)
        q, qm, s, sm = (t.to(self.device) for t in (batch.queries, batch.query_mask, batch.samples, batch.sample_mask))
        if not (torch.is_grad_enabled() and getattr(model.lm, "_rlhf_gradient_checkpointing", False)):
            return model.score_k_cached(q, qm, s, sm)
        B, K, Lr = s.shape
        flat = model.score(q.repeat_interleave(K, 0), qm.repeat_interleave(K, 0), s.reshape(B * K, Lr),
                           sm.reshape(B * K, Lr))
        return flat.view(B, K)

    def batch_step(
        self,
        model: RewardModel,
        batch: EncodedComparisons,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        config: RewardFitConfig,
    ) -> tuple[Tensor, Tensor]:
        """One optimiser step on ``batch`` (``_batch_step``'s, each rank on its rows). Returns this rank's sum of
        per-row losses and its number of rows whose best sample scored highest, on the device (no host sync)."""
        n = len(batch)
        mine = self.rows(n)
        micro = config.micro_batch_size or n
        # The same number of micro-batches on every rank (FSDP's collectives pair up): the largest share's.
        chunks = math.ceil(math.ceil(n / self.world) / micro)
        optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        for c in range(chunks):
            rows = mine[c * micro : (c + 1) * micro]
            part = self.part(batch, rows)
            with autocast(config.precision, self.device):
                rewards = self.rewards(model, part)
            loss = comparison_loss(rewards, part, config)  # the mean over the part's rows
            accumulate(loss * (len(rows) * self.world / n), scaler)  # 0 for a stand-in
            if len(rows):
                loss_sum = loss_sum + loss.detach() * len(rows)
                correct = correct + (rewards.detach().argmax(-1) == part.best.to(self.device)).sum()
        dist.average_gradients(self.whole)
        optimizer_step(optimizer, scaler)
        return loss_sum, correct

    @torch.no_grad()  # not inference_mode: FSDP's gathered weights must stay usable by later passes
    def evaluate(self, model: RewardModel, data: EncodedComparisons, batch_size: int) -> Metrics:
        """``evaluate`` with each batch split over the ranks and the sums added: the same figures on every rank."""
        if len(data) == 0:
            return {}
        correct, loss = 0.0, 0.0
        for start in range(0, len(data), batch_size):
            batch = data.take(torch.arange(start, min(start + batch_size, len(data))))
            rows = self.rows(len(batch))
            part = self.part(batch, rows)
            rewards = self.rewards(model, part)
            if len(rows):
                correct += (rewards.argmax(-1).cpu() == part.best).sum().item()
                loss += best_of_k_loss(rewards, part.best.to(self.device)).item() * len(part)
        totals = dist.sum_over_ranks({"correct": correct, "loss": loss}, self.device)
        return {"valid/accuracy": totals["correct"] / len(data), "valid/loss": totals["loss"] / len(data)}

    def agree_before(self, model: RewardModel, before: Metrics) -> Metrics:
        """Rank 0's before-step figures and gain/bias on every rank (each rank computed the same ones)."""
        before = dist.gather_objects(before)[0]
        model.set_normalization(before["normalization_before/gain"], before["normalization_before/bias"])
        return before

    def agree(self, model: RewardModel, gain: float, bias: float) -> tuple[float, float]:
        gain, bias = dist.gather_objects((gain, bias))[0]
        model.set_normalization(gain, bias)
        return gain, bias

    def result(
        self, model: RewardModel, tokenizer: Tokenizer, metrics: Metrics, history: list[Metrics], stopped: bool
    ) -> FitResult:
        """The ``FitResult`` of this rank (collective under FSDP: the shards are gathered into rank 0's copy)."""
        if self.fsdp:
            state = dist.full_model_state(model)  # rank 0 gets the whole state, the others {}
            if self.template is not None:
                self.template.load_state_dict(state)
                model = self.template
        return FitResult(model, tokenizer, metrics, history, stopped=stopped, main=self.rank == 0)


def _plain_copy(model: RewardModel) -> RewardModel:
    """A CPU copy of ``model`` that computes on its own: gradient checkpointing wraps each block's ``forward`` in a
    closure over the original block, which ``deepcopy`` would share, so the copy drops those wrappers."""
    copied = copy.deepcopy(model).cpu()
    for block in transformer_blocks(copied.lm):
        for name in ("forward", "_rlhf_checkpointed"):
            block.__dict__.pop(name, None)
    copied.lm.__dict__.pop("_rlhf_gradient_checkpointing", None)
    return copied


def _emit(on_log: OnLog | None, history: list[Metrics], metrics: Metrics) -> None:
    history.append(dict(metrics))
    if on_log is not None:
        on_log(dict(metrics))


@torch.inference_mode()
def evaluate(model: RewardModel, data: EncodedComparisons, device: torch.device, batch_size: int = 64) -> Metrics:
    """``valid/accuracy`` (argmax reward is the labeled sample) and ``valid/loss``; empty data gives {}."""
    if len(data) == 0:
        return {}
    correct, loss = 0.0, 0.0
    for start in range(0, len(data), batch_size):
        batch = data.take(torch.arange(start, min(start + batch_size, len(data))))
        rewards = comparison_rewards(model, batch, device)
        correct += (rewards.argmax(-1).cpu() == batch.best).sum().item()
        loss += best_of_k_loss(rewards, batch.best.to(device)).item() * len(batch)
    return {"valid/accuracy": correct / len(data), "valid/loss": loss / len(data)}


def _normalize_before(
    model: RewardModel,
    tokenizer: Tokenizer,
    config: RewardFitConfig,
    data: EncodedComparisons,
    base_samples: Sequence[tuple[Text, Text]] | None,
    should_stop: ShouldStop | None,
    device: torch.device,
) -> Metrics:
    """2019 ``normalize_before``: reset gain 1 / bias 0, score rho's samples, then set gain and bias
    so those scores have mean 0 and population std 1 (the ``best_of_k`` targets). Returns the metrics."""
    model.set_normalization(1.0, 0.0)
    if base_samples is not None:
        pairs = list(base_samples)[: config.normalize_samples]
        if len(pairs) < 2:
            raise ValueError(f"normalize_before needs >= 2 base-policy samples, got {len(pairs)}")
        raw = score_references(model, tokenizer, pairs, config, device)
    else:
        # Fresh samples: a seed apart from the after-step's, as 2019 drew new samples for each step.
        raw = score_policy_samples(
            model, data.queries, data.query_mask, config, should_stop, device, seed=config.seed + 2
        )
    gain, bias = fit_normalization(raw)
    model.set_normalization(gain, bias)
    raw = raw.double()
    return {
        "normalization_before/gain": gain,
        "normalization_before/bias": bias,
        "normalization_before/raw_mean": float(raw.mean()),
        "normalization_before/raw_std": float(raw.std(unbiased=False)),
        "normalization_before/samples": float(raw.numel()),
    }


def _normalize(
    model: RewardModel,
    tokenizer: Tokenizer,
    config: RewardFitConfig,
    data: EncodedComparisons,
    references: Sequence[tuple[Text, Text]] | None,
    should_stop: ShouldStop | None,
    device: torch.device,
) -> tuple[float, float]:
    if config.normalize == "none":  # keep what the before-step set (or 1 and 0)
        return float(model.gain), float(model.bias)
    if config.normalize == "references":
        if not references:
            raise ValueError("normalize='references' needs (query, reference) pairs")
        raw = score_references(model, tokenizer, references, config, device)
        # 2020: shift only. The gain the model was trained under (1, or the before-step's) is kept.
        gain = float(model.gain)
        bias = -gain * float(raw.double().mean())
    else:  # raw outputs do not depend on gain and bias: the fit below replaces them
        raw = score_policy_samples(model, data.queries, data.query_mask, config, should_stop, device)
        gain, bias = fit_normalization(raw)
    model.set_normalization(gain, bias)
    return gain, bias


@torch.no_grad()
def score_policy_samples(
    model: RewardModel,
    queries: Tensor,
    query_mask: Tensor,
    config: RewardFitConfig,
    should_stop: ShouldStop | None,
    device: torch.device,
    seed: int | None = None,
) -> Tensor:
    """Raw rewards of ``normalize_samples`` responses sampled from rho on ``queries`` (all the
    comparisons' queries, cycled in order), truncated as for scoring. ``seed`` (default
    ``config.seed + 1``, the after-step's) seeds the sampling. Returns (normalize_samples,)."""
    policy, _ = load_lm(config.policy_model or config.model, dtype=frozen_dtype(config.precision))
    policy = policy.to(device)
    generator = torch.Generator(device=device).manual_seed(config.seed + 1 if seed is None else seed)
    index = torch.arange(config.normalize_samples) % queries.shape[0]
    scores = []
    for start in range(0, config.normalize_samples, config.sample_batch_size):
        rows = index[start : start + config.sample_batch_size]
        q, qm = queries[rows].to(device), query_mask[rows].to(device)
        gen = generate(policy, q, qm, config.response_length, config.temperature, generator, should_stop=should_stop)
        keep, _ = truncation_mask(gen.responses, config.truncate_token, config.truncate_after)
        ids, mask = torch.cat([q, gen.responses], 1), torch.cat([qm, keep.long()], 1)
        scores.append(model.raw(ids, mask, response_start=q.shape[1]))
    return torch.cat(scores).cpu()


@torch.no_grad()
def score_references(
    model: RewardModel,
    tokenizer: Tokenizer,
    references: Sequence[tuple[Text, Text]],
    config: RewardFitConfig,
    device: torch.device,
) -> Tensor:
    """Raw rewards of (query, response) pairs, (N,): reference texts, or base-policy samples."""
    pad = tokenizer.pad_token_id
    queries, query_mask = pad_left([as_ids(tokenizer, q) for q, _ in references], config.query_length, pad)
    responses, response_mask = pad_right([as_ids(tokenizer, r) for _, r in references], config.response_length, pad)
    out = []
    for start in range(0, len(references), config.sample_batch_size):
        sl = slice(start, start + config.sample_batch_size)
        out.append(
            model.raw(
                torch.cat([queries[sl], responses[sl]], 1).to(device),
                torch.cat([query_mask[sl], response_mask[sl]], 1).to(device),
                response_start=queries.shape[1],
            )
        )
    return torch.cat(out).cpu()
