import torch

from training.rlhf.advantages import compute_gae, masked_mean, masked_var, masked_whiten, whiten


def gae_loop(rewards, values, gamma, lam):
    """Plain per-element reference implementation."""
    B, T = rewards.shape
    adv = torch.zeros(B, T, dtype=torch.float64)
    for b in range(B):
        last = 0.0
        for t in reversed(range(T)):
            next_value = values[b, t + 1].item() if t + 1 < T else 0.0
            delta = rewards[b, t].item() + gamma * next_value - values[b, t].item()
            last = delta + gamma * lam * last
            adv[b, t] = last
    return adv


def test_gae_hand_computed():
    """T=2, gamma=1, lam=0.5: d1 = 1 - 0.5, d0 = 0 + 0.5 - 0.25, A0 = d0 + 0.5 * d1."""
    rewards = torch.tensor([[0.0, 1.0]])
    values = torch.tensor([[0.25, 0.5]])
    adv, ret = compute_gae(rewards, values, gamma=1.0, lam=0.5)
    torch.testing.assert_close(adv, torch.tensor([[0.25 + 0.25, 0.5]]))
    torch.testing.assert_close(ret, adv + values)


def test_gae_matches_plain_loop():
    torch.manual_seed(0)
    rewards = torch.randn(5, 7, dtype=torch.float64)
    values = torch.randn(5, 7, dtype=torch.float64)
    adv, ret = compute_gae(rewards, values, gamma=0.9, lam=0.8)
    torch.testing.assert_close(adv, gae_loop(rewards, values, 0.9, 0.8))
    torch.testing.assert_close(ret, adv + values)


def test_gae_with_lambda_one_and_zero_values_is_reward_to_go():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    adv, _ = compute_gae(rewards, torch.zeros(1, 3), gamma=1.0, lam=1.0)
    torch.testing.assert_close(adv, torch.tensor([[6.0, 5.0, 3.0]]))


def test_whiten_gives_mean_zero_population_variance_one():
    torch.manual_seed(0)
    x = torch.randn(4, 6, dtype=torch.float64) * 3 + 2
    w = whiten(x)
    assert abs(w.mean().item()) < 1e-9
    assert abs(w.var(unbiased=False).item() - 1) < 1e-6


def test_whiten_without_shift_keeps_mean():
    x = torch.tensor([1.0, 3.0], dtype=torch.float64)  # mean 2, population std 1
    torch.testing.assert_close(whiten(x, shift_mean=False), x, atol=1e-6, rtol=0)
    x = torch.tensor([0.0, 4.0], dtype=torch.float64)  # mean 2, population std 2
    torch.testing.assert_close(
        whiten(x, shift_mean=False), torch.tensor([1.0, 3.0], dtype=torch.float64), atol=1e-6, rtol=0
    )


def test_masked_statistics_and_whitening_ignore_masked_entries():
    x = torch.tensor([[1.0, 3.0, 100.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0]])
    assert masked_mean(x, mask).item() == 2.0
    assert masked_var(x, mask).item() == 1.0
    w = masked_whiten(x, mask)
    torch.testing.assert_close(w[0, :2], torch.tensor([-1.0, 1.0], dtype=torch.float64), atol=1e-6, rtol=0)
    assert w[0, 2].item() == 100.0


def test_masked_whiten_mean_zero_variance_one_on_random_mask():
    torch.manual_seed(2)
    x = torch.randn(6, 9, dtype=torch.float64) * 5 - 1
    mask = torch.rand(6, 9) > 0.4
    w = masked_whiten(x, mask)
    assert abs(masked_mean(w, mask).item()) < 1e-9
    assert abs(masked_var(w, mask).item() - 1) < 1e-6
