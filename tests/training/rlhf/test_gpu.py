"""The same library on each device there is: the CPU, and CUDA where there is one."""

import math

import pytest
import torch

from tests.training.rlhf.helpers import devices
from training.rlhf.config import PPOConfig
from training.rlhf.models import PolicyWithValue, build_tiny
from training.rlhf.ppo import PPOTrainer
from training.rlhf.rewards import programmatic_reward
from training.rlhf.tokenizer import pad_left


def trainer_on(device: str) -> PPOTrainer:
    lm, tokenizer = build_tiny(seed=0)
    ref, _ = build_tiny(seed=0)
    q, qm = pad_left([[97 + i % 26] * 6 for i in range(64)], 8, tokenizer.pad_token_id)
    config = PPOConfig(
        query_length=8, response_length=8, batch_size=16, total_episodes=32, lr=1e-3, device=device, seed=5
    )
    return PPOTrainer(config, PolicyWithValue(lm), ref, programmatic_reward("lowercase"), q, qm, tokenizer)


@pytest.mark.parametrize("device", devices())
def test_ppo_runs_on_the_device_and_is_deterministic_for_a_seed(device):
    first, second = trainer_on(device).train().metrics, trainer_on(device).train().metrics
    assert len(first) == 2 and all(math.isfinite(v) for m in first for v in m.values())
    assert [m["objective/score"] for m in first] == [m["objective/score"] for m in second]
