import pytest
import torch

from training.rlhf.rewards import fit_normalization, per_token_rewards, programmatic_reward


def test_fit_normalization_hand_computed():
    """Scores 1 and 3: mean 2, population std 1, so gain 2 and bias 5 - 4 for target (5, 2)."""
    gain, bias = fit_normalization(torch.tensor([1.0, 3.0]), target_mean=5.0, target_std=2.0)
    assert gain == pytest.approx(2.0)
    assert bias == pytest.approx(1.0)


def test_fit_normalization_gives_mean_zero_population_std_one():
    torch.manual_seed(0)
    scores = torch.randn(256) * 4 + 7
    gain, bias = fit_normalization(scores)
    normed = gain * scores.double() + bias
    assert normed.mean().item() == pytest.approx(0.0, abs=1e-9)
    assert normed.var(unbiased=False).item() == pytest.approx(1.0, abs=1e-9)


def test_fit_normalization_rejects_constant_scores():
    with pytest.raises(ValueError, match="std"):
        fit_normalization(torch.ones(8))


def test_per_token_rewards_puts_score_on_last_token():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0]])
    ref = torch.tensor([[-1.5, -2.0, -2.0]])
    rewards, kl = per_token_rewards(logprobs, ref, torch.tensor([10.0]), kl_coef=0.5)
    torch.testing.assert_close(kl, torch.tensor([[0.5, 0.0, -1.0]]))
    torch.testing.assert_close(rewards, torch.tensor([[-0.25, 0.0, 0.5 + 10.0]]))


def test_per_token_rewards_with_mask_scores_last_valid_token():
    logprobs = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    rewards, _ = per_token_rewards(logprobs, logprobs, torch.tensor([1.0, 2.0]), kl_coef=0.1, response_mask=mask)
    torch.testing.assert_close(rewards, torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]]))


def test_programmatic_lowercase_reward_counts_kept_tokens_only():
    reward = programmatic_reward("lowercase")
    responses = torch.tensor([[ord("a"), ord("B"), ord(" "), ord("z")]])
    mask = torch.tensor([[1, 1, 1, 0]])
    score = reward(torch.zeros(1, 1, dtype=torch.long), torch.ones(1, 1), responses, mask)
    torch.testing.assert_close(score, torch.tensor([2 / 3]))


def test_programmatic_reward_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown programmatic reward"):
        programmatic_reward("sentiment")
