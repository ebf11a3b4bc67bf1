"""PPO with a per-token KL penalty against a frozen reference policy (2019 ``train_policy.py``).

One update (``PPOTrainer.step``): rollout -> score -> per-token rewards -> ``noptepochs`` epochs of
minibatch updates -> KL controller update. ``PPOTrainer.train`` loops over updates, reports each
step's metrics through ``on_step`` and checkpoints. See README.md in this folder for the update's
branches (shared/separate value, truncation, stop requests, distributed). Run from a shell with
``python -m training.rlhf ppo CONFIG`` (see ``cli.py``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from transformers import PreTrainedModel

from training.rlhf import distributed as dist
from training.rlhf.advantages import compute_gae, whiten
from training.rlhf.callbacks import Metrics, OnStep, ShouldStop, StopRequested
from training.rlhf.checkpoint import save_checkpoint
from training.rlhf.config import PPOConfig, resolve_device
from training.rlhf.data import Rollout
from training.rlhf.kl import AdaptiveKL, FixedKL
from training.rlhf.losses import ppo_policy_loss, ppo_value_loss
from training.rlhf.models import CHECKPOINT_POLICY_DIR, PolicyWithValue
from training.rlhf.oom import out_of_memory_advice
from training.rlhf.optim import make_optimizer, scheduled_lr, set_lr
from training.rlhf.precision import accumulate, allow_tf32, autocast, frozen_dtype, make_scaler
from training.rlhf.precision import step as optimizer_step
from training.rlhf.rewards import RewardFn, per_token_rewards
from training.rlhf.sampling import entropy_of, generate, logprobs_of, response_logprobs, truncation_mask
from training.rlhf.task import task_write
from training.rlhf.tokenizer import Tokenizer

TRAINER_STATE = "trainer_state.pt"
POLICY_DIR = CHECKPOINT_POLICY_DIR
RANK_SEED_STRIDE = 100003  # 2019: per-rank seed = seed + 100003 * rank


@dataclass
class TrainResult:
    """How a ``train`` call ended."""

    step: int  # completed updates
    stopped: bool  # ended by on_step returning False or by should_stop()
    metrics: list[Metrics]  # every step's metrics, in order
    checkpoint: Path | None  # the last checkpoint written, if any


class PPOTrainer:
    """Holds the policy, reference, reward, optimiser, KL controller and RNG state of one run.

    ``queries``/``query_mask`` (N, Lq) are the query pool (left-padded); every rank draws the same
    global batch of them and keeps its own slice. Deterministic for ``config.seed`` and the number of
    ranks; ``load_checkpoint`` restores a run so its next steps match an uninterrupted run exactly.
    """

    def __init__(
        self,
        config: PPOConfig,
        policy: PolicyWithValue,
        ref_policy: PreTrainedModel,
        reward_fn: RewardFn,
        queries: Tensor,
        query_mask: Tensor,
        tokenizer: Tokenizer,
        should_stop: ShouldStop | None = None,
    ) -> None:
        self.device = dist.init_distributed(resolve_device(config.device))
        allow_tf32(config.tf32, self.device)
        self.rank, self.world_size = dist.rank(), dist.world_size()
        self.config = config.validate(self.world_size)
        self.tokenizer = tokenizer
        self.reward_fn = reward_fn
        self.should_stop = should_stop
        self.queries, self.query_mask = queries, query_mask
        self.policy = policy.to(self.device)
        # Trained weights stay fp32 (master weights under autocast); the frozen reference may be held lower.
        self.ref_policy = ref_policy.to(self.device, frozen_dtype(config.precision)).requires_grad_(False).eval()
        self.fsdp = self.world_size > 1 and config.strategy == "fsdp"
        self._template: PolicyWithValue | None = None  # FSDP: an unsharded CPU copy rank 0 saves checkpoints from
        if self.fsdp:
            self._template = copy.deepcopy(self.policy).cpu() if self.rank == 0 else None
            self._replicated = dist.shard_blocks(self.policy, self.device)  # what stays whole: embeddings, heads
            self.model = self.policy
        elif self.world_size > 1:
            self.model = DistributedDataParallel(
                self.policy, device_ids=[self.device] if self.device.type == "cuda" else None
            )
        else:
            self.model = self.policy
        self.optimizer = make_optimizer(self.policy.parameters(), config.lr, config.adam_eps, config.adam_style)
        self.scaler = make_scaler(config.precision, self.device)  # fp16-mixed only; a pass-through otherwise
        self.kl_ctl = (
            AdaptiveKL(config.kl_coef, config.kl_target, config.kl_horizon)
            if config.adaptive_kl
            else FixedKL(config.kl_coef)
        )
        self.step_count = 0
        self.data_generator = torch.Generator().manual_seed(config.seed)  # same on every rank
        rank_seed = config.seed + RANK_SEED_STRIDE * self.rank
        self.sample_generator = torch.Generator(device=self.device).manual_seed(rank_seed)
        self.minibatch_generator = torch.Generator().manual_seed(rank_seed + 1)
        self._generate_s = 0.0  # wall time of the last rollout's sampling loop

    # --- one update ----------------------------------------------------------------------------

    def step(self) -> Metrics:
        """Run one PPO update and return its metrics (averaged over ranks).

        Raises ``StopRequested`` (with RNG state rewound, weights untouched) when a stop arrives
        during rollout or scoring. A stop during the minibatch phase ends the phase early instead;
        the update then counts as done and ``metrics["ppo/stopped_early"]`` is 1.
        """
        rng = self.rng_state()
        started = time.perf_counter()
        try:
            with autocast(self.config.precision, self.device):  # the precision of the training forward
                rollout = self.rollout()
                self.score(rollout)
        except StopRequested:
            self.load_rng_state(rng)
            raise
        kl_coef = self.kl_ctl.value
        rollout.rewards, rollout.kl = per_token_rewards(
            rollout.logprobs, rollout.ref_logprobs, self._scores_for_reward(rollout), kl_coef
        )
        rollout_s = time.perf_counter() - started
        lr = scheduled_lr(self.config.lr, self.step_count, self.config.n_updates, self.config.lr_schedule)
        set_lr(self.optimizer, lr)
        stats = self.update(rollout)
        metrics = self._metrics(rollout, stats, kl_coef, lr)
        metrics["time/rollout_s"] = rollout_s
        metrics["time/generate_s"] = self._generate_s
        metrics["time/step_s"] = time.perf_counter() - started
        metrics = dist.mean_over_ranks(metrics, self.device)
        self.kl_ctl.update(metrics["objective/kl"], self.config.batch_size)
        self.step_count += 1
        metrics["step"] = float(self.step_count)
        metrics["episodes"] = float(self.step_count * self.config.batch_size)
        return metrics

    @torch.no_grad()
    def rollout(self) -> Rollout:
        """Sample this rank's share of a batch and measure pi_old, rho and the values on it."""
        cfg = self.config
        per_rank = cfg.batch_size // self.world_size
        # 1. Queries: one global draw (identical on all ranks), then this rank's slice.
        n = self.queries.shape[0]
        order = torch.randperm(n, generator=self.data_generator)
        if n < cfg.batch_size:
            order = order[torch.randint(n, (cfg.batch_size,), generator=self.data_generator)]
        rows = order[: cfg.batch_size][self.rank * per_rank : (self.rank + 1) * per_rank]
        queries = self.queries[rows].to(self.device)  # (B, Lq)
        query_mask = self.query_mask[rows].to(self.device)  # (B, Lq)
        # 2. Generate with pi; log-probs and shared-head values come from the same passes (2019).
        started = time.perf_counter()
        gen = generate(
            self.policy,
            queries,
            query_mask,
            cfg.response_length,
            cfg.temperature,
            self.sample_generator,
            should_stop=self._stop_requested,
            stop_check_every=cfg.stop_check_every,
            forward_batch_size=cfg.forward_batch_size,
            decoding=cfg.decoding,
        )
        self._generate_s = time.perf_counter() - started
        ids = torch.cat([queries, gen.responses], dim=1)  # (B, Lq + T)
        mask = torch.cat([query_mask, torch.ones_like(gen.responses)], dim=1)
        Lq = queries.shape[1]
        # 3. Reference log-probs (temperature-scaled too; never the whole batch's logits at once) and, for a
        #    separate value model, values; `forward_batch_size` rows per forward pass.
        ref_logprobs = response_logprobs(self.ref_policy, ids, mask, Lq, cfg.temperature, cfg.forward_batch_size)
        values = gen.values
        if values is None:
            values = torch.cat(
                [self.policy.value_model.per_token(ids[rows], mask[rows])[:, Lq - 1 : -1] for rows in self._chunks(ids)]
            )  # (B, T)
        return Rollout(queries, query_mask, gen.responses, gen.logprobs, ref_logprobs, values)

    @torch.no_grad()
    def score(self, rollout: Rollout) -> None:
        """Truncate for scoring, call the reward, and give invalid rows the penalty (2019 §2.3)."""
        cfg = self.config
        if self._stop_requested():
            raise StopRequested("stop requested before scoring")
        keep, valid = truncation_mask(rollout.responses, cfg.truncate_token, cfg.truncate_after)
        responses = torch.where(
            keep, rollout.responses, torch.full_like(rollout.responses, self.tokenizer.pad_token_id)
        )
        scores = torch.cat(
            [
                self.reward_fn(rollout.queries[rows], rollout.query_mask[rows], responses[rows], keep[rows].long())
                for rows in self._chunks(responses)
            ]
        ).float()  # (B,)
        rollout.scores = torch.where(valid, scores, torch.full_like(scores, cfg.penalty_reward_value))
        rollout.response_mask, rollout.valid = keep, valid

    def _chunks(self, batch: Tensor) -> list[slice]:
        """Row slices of ``forward_batch_size`` (one slice of all rows when None)."""
        rows = self.config.forward_batch_size or batch.shape[0]
        return [slice(start, start + rows) for start in range(0, batch.shape[0], rows)]

    def _scores_for_reward(self, rollout: Rollout) -> Tensor:
        # Debug switch for the sign-flip tripwire: the policy then optimises the negated score.
        return -rollout.scores if self.config.negate_score else rollout.scores

    def update(self, rollout: Rollout) -> dict[str, float]:
        """``noptepochs`` passes of minibatch PPO updates; returns stats averaged over minibatches."""
        cfg = self.config
        B = rollout.responses.shape[0]
        mb = B // cfg.nminibatches
        totals: dict[str, float] = {}
        n = 0
        stopped = False
        mismatch = 0.0
        for _ in range(cfg.noptepochs):
            perm = torch.randperm(B, generator=self.minibatch_generator)
            for i in range(cfg.nminibatches):
                if n > 0 and self._stop_requested():
                    stopped = True
                    break
                stats = self._minibatch_step(rollout.take(perm[i * mb : (i + 1) * mb]))
                if n == 0:  # before any update: rollout vs training forward, same weights and precision
                    mismatch = stats["ppo/policy/logprob_mismatch"]
                del stats["ppo/policy/logprob_mismatch"]
                for k, v in stats.items():
                    totals[k] = totals.get(k, 0.0) + v
                n += 1
            if stopped:
                break
        out = {k: v / n for k, v in totals.items()}
        out["ppo/policy/logprob_mismatch"] = mismatch
        out["ppo/stopped_early"] = 1.0 if stopped else 0.0
        return out

    def _minibatch_step(self, mb: Rollout) -> dict[str, float]:
        cfg = self.config
        # 1. Advantages from this minibatch's rewards and rollout values (2019: inside the loss), whitened over
        #    the whole minibatch before any micro-batch split.
        rewards = whiten(mb.rewards, shift_mean=False) if cfg.whiten_rewards else mb.rewards  # (b, T)
        advantages, returns = compute_gae(rewards, mb.values, cfg.gamma, cfg.lam)  # (b, T)
        advantages = whiten(advantages)
        # 2. Per micro-batch: current log-probs and values (temperature-scaled like the rollout's), the clipped
        #    losses weighted by the micro-batch's share of rows (every row has T tokens, so the weighted sum is the
        #    minibatch's mean), and a backward that adds to .grad; then one optimiser step (loss-scaled in fp16).
        b = mb.responses.shape[0]
        micro = cfg.micro_batch_size or b
        Lq = mb.queries.shape[1]
        self.optimizer.zero_grad(set_to_none=True)
        parts: dict[str, list[Tensor]] = {"logprobs": [], "values": [], "entropy": []}
        sums = dict.fromkeys(("policy", "value", "total", "pg_clipfrac", "vf_clipfrac"), 0.0)
        for start in range(0, b, micro):
            rows = slice(start, start + micro)
            share = (min(start + micro, b) - start) / b
            responses = mb.responses[rows]
            ids = torch.cat([mb.queries[rows], responses], dim=1)  # (m, Lq + T)
            mask = torch.cat([mb.query_mask[rows], torch.ones_like(responses)], dim=1)
            last = start + micro >= b
            # DDP: average gradients over ranks once, after the last micro-batch's backward (FSDP reduce-scatters
            # the sharded blocks' gradients in every backward; its whole parameters are averaged below).
            sync = contextlib.nullcontext() if last or self.world_size == 1 or self.fsdp else self.model.no_sync()
            with sync:
                with autocast(cfg.precision, self.device):  # the losses below are fp32 (logprobs_of, values upcast)
                    logits, values = self.model(ids, mask, Lq)  # (m, T, V), (m, T)
                logprobs = logprobs_of(logits, responses, cfg.temperature)  # (m, T)
                pg_loss, pg_clipfrac = ppo_policy_loss(logprobs, mb.logprobs[rows], advantages[rows], cfg.cliprange)
                vf_loss, vf_clipfrac = ppo_value_loss(values, mb.values[rows], returns[rows], cfg.cliprange_value)
                loss = pg_loss + cfg.vf_coef * vf_loss
                accumulate(loss * share, self.scaler)
            with torch.no_grad():
                parts["logprobs"].append(logprobs.detach())
                parts["values"].append(values.detach())
                parts["entropy"].append(entropy_of(logits.detach(), cfg.temperature))
                for key, value in (("policy", pg_loss), ("value", vf_loss), ("total", loss),
                                   ("pg_clipfrac", pg_clipfrac), ("vf_clipfrac", vf_clipfrac)):
                    sums[key] += value.item() * share
            del logits
        if self.fsdp:
            dist.average_gradients(self._replicated)
        optimizer_step(self.optimizer, self.scaler)
        with torch.no_grad():
            logprobs, values, entropy = (torch.cat(parts[k]) for k in ("logprobs", "values", "entropy"))
            return {
                "ppo/loss/policy": sums["policy"],
                "ppo/loss/value": sums["value"],
                "ppo/loss/total": sums["total"],
                "ppo/policy/clipfrac": sums["pg_clipfrac"],
                "ppo/policy/approxkl": (0.5 * ((logprobs - mb.logprobs) ** 2).mean()).item(),
                "ppo/policy/logprob_mismatch": (logprobs - mb.logprobs).abs().mean().item(),
                "ppo/policy/entropy": entropy.mean().item(),
                "ppo/val/clipfrac": sums["vf_clipfrac"],
                "ppo/val/mean": values.mean().item(),
                "ppo/val/var_explained": (1 - ((values - returns) ** 2).mean() / returns.var(unbiased=False)).item(),
                "ppo/returns/mean": returns.mean().item(),
                "ppo/returns/var": returns.var(unbiased=False).item(),
                "ppo/advantages/mean": advantages.mean().item(),
            }

    def _metrics(self, rollout: Rollout, stats: dict[str, float], kl_coef: float, lr: float) -> Metrics:
        kl_per_episode = rollout.kl.sum(-1)  # (B,)
        return {
            "objective/score": rollout.scores.mean().item(),
            "objective/kl": kl_per_episode.mean().item(),
            "objective/kl_coef": kl_coef,
            "objective/entropy": (-rollout.logprobs).sum(-1).mean().item(),
            "objective/score_total": (rollout.scores - kl_coef * kl_per_episode).mean().item(),
            "ppo/response_length": rollout.response_mask.sum(-1).float().mean().item(),
            "ppo/valid_fraction": rollout.valid.float().mean().item(),
            "ppo/lr": lr,
            **stats,
        }

    def _stop_requested(self) -> bool:
        # Only rank 0 asks the caller; every rank learns the answer, so all stop at the same point.
        local = self.rank == 0 and self.should_stop is not None and bool(self.should_stop())
        return dist.any_rank(local, self.device) if self.world_size > 1 else local

    # --- the loop ------------------------------------------------------------------------------

    def train(self, on_step: OnStep | None = None) -> TrainResult:
        """Run updates until ``config.n_updates``; stop early when ``on_step(metrics)`` returns False
        or ``should_stop()`` turns true. Checkpoints every ``save_every`` updates, at the end and on
        stop (when ``checkpoint_dir`` is set)."""
        cfg = self.config
        history: list[Metrics] = []
        checkpoint: Path | None = None
        while self.step_count < cfg.n_updates:
            try:
                with out_of_memory_advice(cfg, f"PPO update {self.step_count + 1}"):
                    metrics = self.step()
            except StopRequested:
                return TrainResult(self.step_count, True, history, self._save_if_configured() or checkpoint)
            history.append(metrics)
            keep_going = on_step(metrics) if (on_step is not None and self.rank == 0) else True
            stop = dist.any_rank(not keep_going, self.device)
            stop = stop or metrics["ppo/stopped_early"] > 0
            if stop or self.step_count == cfg.n_updates or (cfg.save_every and self.step_count % cfg.save_every == 0):
                checkpoint = self._save_if_configured() or checkpoint
            if stop:
                return TrainResult(self.step_count, True, history, checkpoint)
        return TrainResult(self.step_count, False, history, checkpoint)

    # --- checkpoints ---------------------------------------------------------------------------

    def rng_state(self) -> dict[str, Tensor]:
        return {
            "data": self.data_generator.get_state(),
            "sample": self.sample_generator.get_state(),
            "minibatch": self.minibatch_generator.get_state(),
        }

    def load_rng_state(self, state: dict[str, Tensor]) -> None:
        self.data_generator.set_state(state["data"])
        self.sample_generator.set_state(state["sample"])
        self.minibatch_generator.set_state(state["minibatch"])

    def state_dict(self) -> dict[str, Any]:
        """Everything but the weights: step, optimiser, KL controller, every rank's RNG, config (collective).
        Under FSDP the optimiser state is gathered whole, keyed by parameter name."""
        return {
            "step": self.step_count,
            "optimizer": dist.full_optimizer_state(self.policy, self.optimizer) if self.fsdp
            else self.optimizer.state_dict(),
            "strategy": "fsdp" if self.fsdp else "ddp",
            "scaler": self.scaler.state_dict(),
            "kl": self.kl_ctl.state_dict(),
            "rng": dist.gather_objects({k: v.cpu() for k, v in self.rng_state().items()}),
            "world_size": self.world_size,
            "config": json.dumps(dataclasses.asdict(self.config)),
        }

    def save_checkpoint(self, directory: str | Path) -> Path | None:
        """Write a checkpoint atomically (rank 0 writes, all ranks must call). Returns its folder on rank 0."""
        state = self.state_dict()  # collective: gathers every rank's RNG
        weights = dist.full_model_state(self.policy) if self.fsdp else None  # collective: the shards gathered
        folder = None
        if self.rank == 0:
            policy = self.policy
            if weights is not None:
                self._template.load_state_dict(weights)
                policy = self._template

            def write(tmp: Path) -> None:
                policy.save_pretrained(tmp / POLICY_DIR, self.tokenizer)
                torch.save(state, tmp / TRAINER_STATE)
                (tmp / "config.json").write_text(state["config"])
                task_write(tmp, self.config, self.tokenizer)

            folder = save_checkpoint(directory, self.step_count, write, keep=self.config.keep_checkpoints)
        dist.barrier()
        return folder

    def load_checkpoint(self, folder: str | Path) -> None:
        """Restore weights, optimiser, KL controller, step and RNG from ``folder`` (same world size)."""
        folder = Path(folder)
        state = torch.load(folder / TRAINER_STATE, map_location="cpu", weights_only=True)
        if state["world_size"] != self.world_size:
            raise ValueError(f"checkpoint was written by {state['world_size']} ranks, this run has {self.world_size}")
        strategy = "fsdp" if self.fsdp else "ddp"
        if state.get("strategy", "ddp") != strategy:
            raise ValueError(f"checkpoint was written with strategy {state.get('strategy')!r}, this run uses {strategy!r}")
        saved, _ = PolicyWithValue.from_pretrained(folder / POLICY_DIR)
        if self.fsdp:
            dist.load_full_model_state(self.policy, saved.state_dict())
            dist.load_full_optimizer_state(self.policy, self.optimizer, state["optimizer"])
        else:
            self.policy.load_state_dict(saved.state_dict())
            self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):  # absent in checkpoints written before mixed precision
            self.scaler.load_state_dict(state["scaler"])
        self.kl_ctl.load_state_dict(state["kl"])
        self.step_count = int(state["step"])
        rng = state["rng"][self.rank]
        self.data_generator.set_state(rng["data"])
        self.sample_generator.set_state(rng["sample"])
        self.minibatch_generator.set_state(rng["minibatch"])

    def _save_if_configured(self) -> Path | None:
        return self.save_checkpoint(self.config.checkpoint_dir) if self.config.checkpoint_dir else None


def train(
    config: PPOConfig,
    policy: PolicyWithValue,
    ref_policy: PreTrainedModel,
    reward_fn: RewardFn,
    queries: Tensor,
    query_mask: Tensor,
    tokenizer: Tokenizer,
    on_step: OnStep | None = None,
    should_stop: ShouldStop | None = None,
    resume_from: str | Path | None = None,
) -> TrainResult:
    """Build a ``PPOTrainer``, optionally restore ``resume_from`` (a checkpoint folder), and train."""
    trainer = PPOTrainer(config, policy, ref_policy, reward_fn, queries, query_mask, tokenizer, should_stop)
    if resume_from is not None:
        trainer.load_checkpoint(resume_from)
    return trainer.train(on_step)
