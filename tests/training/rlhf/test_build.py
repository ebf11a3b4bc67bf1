"""build.py, the builders the CLI and the product share: a separate value model copied from the (frozen)
reward model trains; frozen models are held in the precision's frozen dtype."""

import pytest
import torch

from training.rlhf.build import build_trainer
from training.rlhf.config import PPOConfig
from training.rlhf.models import PolicyWithValue, RewardModel, build_tiny


@pytest.fixture
def reward_folder(tmp_path):
    lm, tokenizer = build_tiny(seed=7)
    model = RewardModel(lm, head_seed=2)
    model.set_normalization(2.0, 0.5)
    model.save_pretrained(tmp_path / "rm", tokenizer)
    return tmp_path / "rm"


def separate_config(reward_folder, **overrides) -> PPOConfig:
    base = dict(
        reward=str(reward_folder), value_model="separate", query_length=8, response_length=8, batch_size=8,
        total_episodes=8, lr=1e-4, device="cpu",
    )
    return PPOConfig(**{**base, **overrides})


@pytest.mark.parametrize("precision", ["fp32", "bf16-mixed"])
def test_separate_value_model_built_from_a_frozen_reward_model_trains(reward_folder, precision):
    trainer = build_trainer(separate_config(reward_folder, precision=precision))
    value_model = trainer.policy.value_model
    value_params = list(value_model.parameters())
    assert len(value_params) == 30 and all(p.requires_grad and p.dtype == torch.float32 for p in value_params)
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert all(id(p) in in_optimizer for p in value_params)
    # The reward PPO scores with stays frozen (and in the frozen dtype), a separate module from the copy.
    reward_model = trainer.reward_fn.__wrapped__.__self__
    assert reward_model is not value_model
    assert not any(p.requires_grad for p in reward_model.parameters())
    expected = torch.bfloat16 if precision == "bf16-mixed" else torch.float32
    assert next(reward_model.parameters()).dtype == expected and reward_model.gain.dtype == torch.float32
    reward_before = {n: p.clone() for n, p in reward_model.named_parameters()}
    before = {n: p.detach().clone() for n, p in value_model.named_parameters()}
    metrics = trainer.step()
    assert metrics["ppo/loss/value"] > 0
    changed = [n for n, p in value_model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == len(before) == 30
    assert all(torch.equal(p, reward_before[n]) for n, p in reward_model.named_parameters())


def test_an_untied_lm_head_in_the_value_copy_stays_frozen(reward_folder):
    lm, _ = build_tiny(seed=7)
    lm.config.tie_word_embeddings = False
    lm.lm_head.weight = torch.nn.Parameter(lm.lm_head.weight.detach().clone())
    reward_model = RewardModel(lm).requires_grad_(False)
    policy = PolicyWithValue.with_value_from_reward_model(build_tiny(seed=0)[0], reward_model)
    head = policy.value_model.lm.get_output_embeddings().weight
    assert not head.requires_grad
    assert all(p.requires_grad for p in policy.value_model.parameters() if p is not head)
