"""Library objects built from a config alone: the reward a PPO run optimises and a whole PPO trainer.
Shared by the command line (cli.py) and the Django app's services, so neither imports the other."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from training.rlhf import distributed as dist
from training.rlhf.config import PPOConfig, resolve_device
from training.rlhf.data import load_queries
from training.rlhf.models import PolicyWithValue, RewardModel, enable_gradient_checkpointing, load_lm, load_policy
from training.rlhf.ppo import PPOTrainer
from training.rlhf.precision import frozen_dtype
from training.rlhf.rewards import RewardFn, programmatic_reward
from training.rlhf.task import task_check
from training.rlhf.tokenizer import Tokenizer, encode_queries

BUILTIN = "builtin:"


def build_reward(config: PPOConfig, device: torch.device) -> tuple[RewardFn, RewardModel | None]:
    """A programmatic reward (``builtin:<name>``) or a frozen reward model loaded from a folder, in fp32
    (a separate value model is copied from it first; ``build_policy`` then holds it in the frozen dtype)."""
    if config.reward.startswith(BUILTIN):
        return programmatic_reward(config.reward[len(BUILTIN) :]), None
    model, _ = RewardModel.from_pretrained(config.reward)
    model = model.to(device).requires_grad_(False).eval()
    return torch.no_grad()(model.score), model


def random_queries(n: int, length: int, seed: int) -> list[str]:
    """Seeded lowercase pseudo-words, for smoke runs without a query file."""
    generator = torch.Generator().manual_seed(seed)
    letters = "abcdefghijklmnopqrstuvwxyz     "
    picks = torch.randint(len(letters), (n, length), generator=generator).tolist()
    return ["".join(letters[i] for i in row) for row in picks]


def build_policy(
    config: PPOConfig, device: torch.device
) -> tuple[RewardFn, RewardModel | None, PolicyWithValue, Tokenizer, PreTrainedModel]:
    """The reward, the trained policy (fp32 master weights, a separate value model copied from the reward
    model when asked) and the frozen reference policy; frozen models are held in ``frozen_dtype``."""
    reward_fn, reward_model = build_reward(config, device)
    policy, tokenizer = load_policy(config.policy_model, reward_model if config.value_model == "separate" else None)
    if reward_model is not None:  # a reward model fitted for other lengths, truncation or vocabulary is refused
        task_check(config.reward, config, tokenizer, "the reward model")
    if config.gradient_checkpointing:  # the trained models only: the frozen ones run without gradients
        enable_gradient_checkpointing(policy.lm)
        if policy.value_model is not None:
            enable_gradient_checkpointing(policy.value_model.lm)
    if reward_model is not None:
        # In place (reward_fn scores with it); gain and bias stay fp32.
        reward_model.lm.to(frozen_dtype(config.precision))
        reward_model.head.to(frozen_dtype(config.precision))
    ref_policy, _ = load_lm(config.policy_model, dtype=frozen_dtype(config.precision))
    return reward_fn, reward_model, policy, tokenizer, ref_policy


def build_trainer(config: PPOConfig, should_stop=None) -> PPOTrainer:
    """Everything a PPO run needs, from the config alone (what the CLI and a resumed run use)."""
    device = dist.init_distributed(resolve_device(config.device))
    reward_fn, _, policy, tokenizer, ref_policy = build_policy(config, device)
    texts = (
        load_queries(config.queries_path)
        if config.queries_path
        else random_queries(1024, config.query_length, config.seed)
    )
    queries, query_mask = encode_queries(tokenizer, texts, config.query_length)
    return PPOTrainer(config, policy, ref_policy, reward_fn, queries, query_mask, tokenizer, should_stop=should_stop)
