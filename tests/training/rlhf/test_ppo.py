"""PPO trainer: learning smoke run, metrics, truncation/penalty, value-model options, stop requests,
and exact resume from checkpoints."""

import math

import pytest
import torch

from training.rlhf.checkpoint import latest_checkpoint
from training.rlhf.config import ConfigError, PPOConfig
from training.rlhf.models import PolicyWithValue, RewardModel, build_tiny
from training.rlhf.optim import set_lr
from training.rlhf.ppo import PPOTrainer
from training.rlhf.rewards import per_token_rewards, programmatic_reward
from training.rlhf.tokenizer import pad_left
from tests.training.rlhf.helpers import assert_gradients_close

METRIC_KEYS = {
    "objective/score",
    "objective/kl",
    "objective/kl_coef",
    "objective/entropy",
    "ppo/loss/policy",
    "ppo/loss/value",
    "ppo/policy/clipfrac",
    "ppo/policy/approxkl",
    "ppo/val/var_explained",
    "ppo/returns/mean",
    "ppo/response_length",
    "step",
    "episodes",
}


def make_trainer(config: PPOConfig, should_stop=None, value_from_rm: RewardModel | None = None) -> PPOTrainer:
    lm, tokenizer = build_tiny(seed=0)
    ref, _ = build_tiny(seed=0)
    generator = torch.Generator().manual_seed(0)
    queries = [
        torch.randint(97, 123, (int(n),), generator=generator).tolist()
        for n in torch.randint(4, 9, (128,), generator=generator)
    ]
    q, qm = pad_left(queries, 8, tokenizer.pad_token_id)
    if value_from_rm is None:
        policy, reward = PolicyWithValue(lm), programmatic_reward("lowercase")
    else:
        policy, reward = PolicyWithValue.with_value_from_reward_model(lm, value_from_rm), value_from_rm.score
    return PPOTrainer(config, policy, ref, reward, q, qm, tokenizer, should_stop=should_stop)


def small_config(**overrides) -> PPOConfig:
    base = dict(
        query_length=8, response_length=8, batch_size=16, total_episodes=64, lr=1e-3, kl_coef=0.05, device="cpu", seed=3
    )
    return PPOConfig(**{**base, **overrides})


def test_ppo_raises_programmatic_score_while_kl_stays_near_target():
    """30 updates of 64 episodes against the 'lowercase' reward: the mean score rises and the
    adaptive controller keeps KL under twice its target."""
    config = small_config(
        response_length=16, batch_size=64, total_episodes=30 * 64, adaptive_kl=True, kl_target=4.0, kl_horizon=1000
    )
    result = make_trainer(config).train()
    scores = [m["objective/score"] for m in result.metrics]
    assert len(result.metrics) == 30 and not result.stopped
    assert sum(scores[-5:]) / 5 > sum(scores[:5]) / 5 + 0.05
    assert max(m["objective/kl"] for m in result.metrics) < 2 * config.kl_target
    assert METRIC_KEYS <= set(result.metrics[-1])
    assert all(math.isfinite(v) for m in result.metrics for v in m.values())


def test_first_update_starts_on_policy():
    """The first minibatch sees ratio 1 and zero values (value head starts at 0): nothing clipped,
    and approxkl stays tiny with one epoch and a tiny learning rate."""
    metrics = make_trainer(small_config(noptepochs=1, lr=1e-9)).step()
    assert metrics["ppo/policy/clipfrac"] == 0.0
    assert metrics["ppo/policy/approxkl"] < 1e-8
    assert metrics["ppo/val/mean"] == 0.0
    assert metrics["objective/kl"] == pytest.approx(0.0, abs=1e-4)  # pi_old equals rho before any update


def test_truncation_penalty_replaces_score_of_rows_without_the_token():
    trainer = make_trainer(small_config(truncate_token=ord("e"), truncate_after=2, penalty_reward_value=-1.0))
    rollout = trainer.rollout()
    trainer.score(rollout)
    assert (rollout.scores[~rollout.valid] == -1.0).all()
    assert (rollout.scores[rollout.valid] >= 0.0).all()
    lengths = rollout.response_mask.sum(-1)
    assert (lengths[~rollout.valid] == 8).all()
    expected = [row.tolist().index(ord("e"), 2) + 1 for row in rollout.responses[rollout.valid]]
    assert lengths[rollout.valid].tolist() == expected


def test_negate_score_makes_the_policy_lower_the_score():
    """The debug flag flips what is optimised: the logged (true) score falls."""
    result = make_trainer(
        small_config(response_length=16, batch_size=32, total_episodes=12 * 32, negate_score=True)
    ).train()
    scores = [m["objective/score"] for m in result.metrics]
    assert sum(scores[-3:]) / 3 < sum(scores[:3]) / 3


def test_separate_value_model_starts_from_reward_model_values():
    rm_lm, _ = build_tiny(seed=7)
    rm = RewardModel(rm_lm, head_seed=2)
    rm.set_normalization(3.0, 0.5)
    trainer = make_trainer(small_config(value_model="separate", reward="path/to/rm"), value_from_rm=rm)
    rollout = trainer.rollout()
    with torch.no_grad():
        ids = torch.cat([rollout.queries, rollout.responses], 1)
        mask = torch.cat([rollout.query_mask, torch.ones_like(rollout.responses)], 1)
        expected = rm.per_token(ids, mask)[:, 7:-1]
    torch.testing.assert_close(rollout.values, expected)
    metrics = trainer.step()
    assert math.isfinite(metrics["ppo/loss/value"])


def test_config_validation_names_the_problem():
    with pytest.raises(ConfigError, match="kl_target"):
        small_config(adaptive_kl=True).validate()
    with pytest.raises(ConfigError, match="minibatches"):
        small_config(batch_size=16, nminibatches=3).validate()
    with pytest.raises(ConfigError, match="ranks"):
        small_config(batch_size=15).validate(world_size=2)


def weights(trainer: PPOTrainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.policy.state_dict().items()}


def test_resume_after_on_step_stop_matches_uninterrupted_run_exactly(tmp_path):
    config = small_config(total_episodes=4 * 16, adaptive_kl=True, kl_target=1.0, kl_horizon=100)
    straight = make_trainer(config)
    expected = straight.train().metrics

    first = make_trainer(PPOConfig(**{**vars(config), "checkpoint_dir": str(tmp_path)}))
    stopped = first.train(on_step=lambda m: m["step"] < 2)
    assert stopped.stopped and stopped.step == 2
    assert latest_checkpoint(tmp_path).name == "step-00000002"

    resumed = make_trainer(PPOConfig(**{**vars(config), "checkpoint_dir": str(tmp_path)}))
    resumed.load_checkpoint(latest_checkpoint(tmp_path))
    rest = resumed.train().metrics
    timing = {k for k in expected[0] if k.startswith("time/")}
    strip = lambda ms: [{k: v for k, v in m.items() if k not in timing} for m in ms]  # noqa: E731
    assert strip(stopped.metrics + rest) == strip(expected)
    for name, tensor in weights(straight).items():
        assert torch.equal(tensor, weights(resumed)[name]), name


def test_stop_during_generation_checkpoints_previous_step_and_resumes_exactly(tmp_path):
    config = small_config(total_episodes=3 * 16, checkpoint_dir=str(tmp_path), stop_check_every=4)
    expected = make_trainer(small_config(total_episodes=3 * 16)).train().metrics
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) == 8  # 6 checks per update (2 in generation, 1 before scoring, 3 between
        # minibatches), so this is the second check inside the second update's generation

    result = make_trainer(config, should_stop=should_stop).train()
    assert result.stopped and result.step == 1
    assert result.checkpoint == latest_checkpoint(tmp_path) and result.checkpoint.name == "step-00000001"
    resumed = make_trainer(config)
    resumed.load_checkpoint(result.checkpoint)
    rest = resumed.train().metrics
    assert [m["objective/score"] for m in result.metrics + rest] == [m["objective/score"] for m in expected]
    assert [m["ppo/loss/policy"] for m in rest] == [m["ppo/loss/policy"] for m in expected[1:]]


def test_policy_loads_from_a_ppo_checkpoint_folder(tmp_path):
    trainer = make_trainer(small_config(total_episodes=16, checkpoint_dir=str(tmp_path)))
    result = trainer.train()
    loaded, tokenizer = PolicyWithValue.from_pretrained(result.checkpoint)
    for name, tensor in trainer.policy.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert tokenizer.vocab_size == 258


# --- memory: micro-batches with gradient accumulation, chunked rollout forwards --------------------------------------
# fp32 tolerance: gradients as in helpers.assert_gradients_close, losses within 1e-6 absolute; a whole run's metrics
# and weights within 1e-4 (Adam over 4 updates amplifies rounding).


def _one_minibatch_update(micro_batch_size, forward_batch_size=None):
    trainer = make_trainer(small_config(micro_batch_size=micro_batch_size, forward_batch_size=forward_batch_size))
    rollout = trainer.rollout()
    trainer.score(rollout)
    rollout.rewards, rollout.kl = per_token_rewards(rollout.logprobs, rollout.ref_logprobs, rollout.scores, 0.05)
    set_lr(trainer.optimizer, 0.0)  # the step leaves the weights alone and the accumulated gradients in .grad
    stats = trainer._minibatch_step(rollout.take(torch.arange(16)))
    grads = {name: p.grad.clone() for name, p in trainer.policy.named_parameters() if p.grad is not None}
    return rollout, stats, grads


@pytest.mark.parametrize("micro_batch_size, forward_batch_size", [(1, None), (2, 3), (4, 16), (8, 5), (16, 1)])
def test_micro_batches_give_the_whole_minibatchs_loss_and_gradients(micro_batch_size, forward_batch_size):
    """Advantages are whitened over the whole minibatch, then each micro-batch's loss is weighted by its share of
    rows: the accumulated gradient is the unchunked one. Chunked rollout forwards draw the same samples."""
    rollout0, stats0, grads0 = _one_minibatch_update(None)
    rollout, stats, grads = _one_minibatch_update(micro_batch_size, forward_batch_size)
    assert torch.equal(rollout.responses, rollout0.responses)
    for name in ("logprobs", "ref_logprobs", "values", "scores"):
        torch.testing.assert_close(getattr(rollout, name), getattr(rollout0, name), rtol=0, atol=1e-6)
    assert_gradients_close(grads, grads0)
    for key, value in stats0.items():
        assert stats[key] == pytest.approx(value, abs=1e-6), key


def test_a_short_run_is_the_same_with_micro_batches_and_chunked_forwards():
    """4 seeded updates of 2 minibatches: metrics and final weights match the unchunked run."""
    runs = []
    for overrides in ({}, {"micro_batch_size": 2, "forward_batch_size": 4}):
        trainer = make_trainer(small_config(nminibatches=2, **overrides))
        result = trainer.train()
        runs.append((result.metrics, trainer.policy.state_dict()))
    (metrics0, weights0), (metrics, weights) = runs
    for m0, m in zip(metrics0, metrics, strict=True):
        for key, value in m0.items():
            if not key.startswith("time/"):
                assert m[key] == pytest.approx(value, abs=1e-4), key
    for name, tensor in weights0.items():
        torch.testing.assert_close(weights[name], tensor, rtol=0, atol=1e-4)


def test_separate_value_model_micro_batches_match_too():
    grads = []
    for micro in (None, 4):
        trainer = make_trainer(
            small_config(value_model="separate", reward="rm", micro_batch_size=micro, forward_batch_size=micro),
            value_from_rm=RewardModel(build_tiny(seed=5)[0], head_seed=5),
        )
        rollout = trainer.rollout()
        trainer.score(rollout)
        rollout.rewards, rollout.kl = per_token_rewards(rollout.logprobs, rollout.ref_logprobs, rollout.scores, 0.05)
        set_lr(trainer.optimizer, 0.0)
        trainer._minibatch_step(rollout.take(torch.arange(16)))
        grads.append({n: p.grad.clone() for n, p in trainer.policy.named_parameters() if p.grad is not None})
    assert any(n.startswith("value_model.") for n in grads[0])
    assert_gradients_close(grads[1], grads[0])


@pytest.mark.parametrize("micro_batch_size", [3, 0, 32])
def test_a_micro_batch_size_that_does_not_divide_the_minibatch_is_refused(micro_batch_size):
    with pytest.raises(ConfigError, match="micro_batch_size"):
        small_config(nminibatches=2, micro_batch_size=micro_batch_size).validate()
    with pytest.raises(ConfigError, match="forward_batch_size"):
        small_config(forward_batch_size=0).validate()
    small_config(nminibatches=2, micro_batch_size=4, forward_batch_size=3).validate()
