import math

import pytest
import torch

from training.rlhf.data import Comparison
from training.rlhf.losses import (
    best_of_k_loss,
    pairwise_confidence_loss,
    pairwise_loss,
    ppo_policy_loss,
    ppo_value_loss,
)


def test_best_of_k_loss_hand_computed():
    """Rewards (0, ln 2, 0, 0) with best=1: logsumexp = ln 5, loss = ln 5 - ln 2."""
    rewards = torch.tensor([[0.0, math.log(2.0), 0.0, 0.0]])
    loss = best_of_k_loss(rewards, torch.tensor([1]))
    assert math.isclose(loss.item(), math.log(5.0) - math.log(2.0), rel_tol=1e-6)


def test_best_of_k_loss_is_mean_over_batch():
    rewards = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    loss = best_of_k_loss(rewards, torch.tensor([0, 1]))
    expected = (math.log(1 + math.exp(-1.0)) + math.log(2.0)) / 2
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)


def test_best_of_two_equals_pairwise_loss():
    """K=2 is exactly Bradley-Terry, whichever column holds the chosen sample."""
    torch.manual_seed(0)
    rewards = torch.randn(16, 2)
    best = torch.randint(0, 2, (16,))
    chosen = rewards.gather(1, best[:, None]).squeeze(1)
    rejected = rewards.gather(1, (1 - best)[:, None]).squeeze(1)
    torch.testing.assert_close(best_of_k_loss(rewards, best), pairwise_loss(chosen, rejected))


def test_pairwise_loss_hand_computed_and_direction():
    assert math.isclose(pairwise_loss(torch.tensor([0.0]), torch.tensor([0.0])).item(), math.log(2.0), rel_tol=1e-6)
    assert pairwise_loss(torch.tensor([2.0]), torch.tensor([0.0])) < pairwise_loss(
        torch.tensor([0.0]), torch.tensor([2.0])
    )


def test_best_of_k_loss_ignores_a_shared_constant_in_value_and_gradient():
    torch.manual_seed(1)
    base = torch.randn(8, 4)
    best = torch.randint(0, 4, (8,))
    r1 = base.clone().requires_grad_(True)
    r2 = (base + 3.7).requires_grad_(True)
    l1, l2 = best_of_k_loss(r1, best), best_of_k_loss(r2, best)
    l1.backward()
    l2.backward()
    torch.testing.assert_close(l1, l2)
    torch.testing.assert_close(r1.grad, r2.grad)


def test_best_of_k_gradient_is_softmax_minus_onehot_over_batch():
    rewards = torch.tensor([[1.0, 2.0, 0.5, -1.0]], requires_grad=True)
    best_of_k_loss(rewards, torch.tensor([2])).backward()
    expected = torch.softmax(rewards.detach(), -1) - torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    torch.testing.assert_close(rewards.grad, expected)


def test_ppo_policy_loss_hand_computed():
    """Ratios e^0.5 (clipped at 1.2 for A>0) and e^-0.5 (A<0: clip at 0.8 gives the larger loss)."""
    old = torch.zeros(1, 2)
    new = torch.tensor([[0.5, -0.5]])
    adv = torch.tensor([[1.0, -1.0]])
    loss, clipfrac = ppo_policy_loss(new, old, adv, cliprange=0.2)
    # element 0: max(-1.6487, -1.2) = -1.2 (clipped); element 1: max(0.6065, 0.8) = 0.8 (clipped)
    assert math.isclose(loss.item(), (-1.2 + 0.8) / 2, rel_tol=1e-6)
    assert clipfrac.item() == 1.0


def test_ppo_policy_loss_unclipped_at_ratio_one_is_minus_mean_advantage():
    adv = torch.tensor([[1.0, 2.0, -0.5]])
    logp = torch.tensor([[-1.0, -2.0, -3.0]])
    loss, clipfrac = ppo_policy_loss(logp, logp, adv)
    assert math.isclose(loss.item(), -adv.mean().item(), rel_tol=1e-6)
    assert clipfrac.item() == 0.0


def test_ppo_value_loss_hand_computed():
    """V moved 0.5 away from V_old=0 towards R=1: clipped V=0.2 has the larger error 0.64."""
    values = torch.tensor([[0.5, 0.1]])
    old = torch.zeros(1, 2)
    returns = torch.tensor([[1.0, 0.0]])
    loss, clipfrac = ppo_value_loss(values, old, returns, cliprange_value=0.2)
    # element 0: max(0.25, 0.64) = 0.64; element 1: V within range, error 0.01 both ways
    assert math.isclose(loss.item(), 0.5 * (0.64 + 0.01) / 2, rel_tol=1e-6)
    assert clipfrac.item() == 0.5


# ---------------------------------------------------------------- pairwise confidence (2020 9-point scale)



def test_pairwise_confidence_loss_hand_computed():
    # c=5, equal rewards: p=1/2, loss = ln 2.
    assert math.isclose(pairwise_confidence_loss(torch.zeros(1, 2), torch.tensor([5])).item(), math.log(2), rel_tol=1e-6)
    # c=1 (sample 0 definitely better), r=(1, 0): p=0, loss = softplus(-1) = ln(1 + e^-1) = 0.3132617.
    assert math.isclose(pairwise_confidence_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([1])).item(),
                        0.3132617, rel_tol=1e-6)
    # c=7, r=(0, 2): p=3/4, loss = 0.75 ln(1 + e^-2) + 0.25 ln(1 + e^2) = 0.0951960 + 0.5317320 = 0.6269280.
    assert math.isclose(pairwise_confidence_loss(torch.tensor([[0.0, 2.0]]), torch.tensor([7])).item(),
                        0.6269280, rel_tol=1e-6)
    # The batch mean of the two last: (0.3132617 + 0.6269280) / 2.
    batch = pairwise_confidence_loss(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([1, 7]))
    assert math.isclose(batch.item(), 0.4700948, rel_tol=1e-6)


def test_pairwise_confidence_loss_margin_hand_computed():
    # c=9, margin 1: m = 1 * (9-5)/4 = 1, d = 2 - 0 - 1 = 1, p=1: loss = softplus(-1) = 0.3132617.
    assert math.isclose(pairwise_confidence_loss(torch.tensor([[0.0, 2.0]]), torch.tensor([9]), margin=1.0).item(),
                        0.3132617, rel_tol=1e-6)
    # c=3, margin 2: m = 2 * (3-5)/4 = -1, d = 0 - 0 + 1 = 1, p=1/4: 0.25 ln(1+e^-1) + 0.75 ln(1+e) = 0.0783154 + 0.9849463 = 1.0632617.
    assert math.isclose(pairwise_confidence_loss(torch.zeros(1, 2), torch.tensor([3]), margin=2.0).item(),
                        0.25 * math.log1p(math.exp(-1)) + 0.75 * math.log1p(math.e), rel_tol=1e-6)
    assert math.isclose(0.25 * math.log1p(math.exp(-1)) + 0.75 * math.log1p(math.e), 1.0632617, rel_tol=1e-6)


def test_pairwise_confidence_at_the_ends_is_bradley_terry_and_its_gradient_is_p_minus_sigmoid():
    r = torch.tensor([[0.3, -1.2], [2.0, 0.5]])
    ends = pairwise_confidence_loss(r, torch.tensor([1, 9]))
    bt = (pairwise_loss(r[:1, 0], r[:1, 1]) + pairwise_loss(r[1:, 1], r[1:, 0])) / 2
    assert math.isclose(ends.item(), bt.item(), rel_tol=1e-6)
    # d loss / d r1 = (sigmoid(r1 - r0) - p) / B: zero where the model already says p.
    r = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]], requires_grad=True)  # sigmoid = 1/2 and 3/4
    pairwise_confidence_loss(r, torch.tensor([5, 7])).backward()
    assert torch.allclose(r.grad, torch.zeros(2, 2), atol=1e-6)


def test_pairwise_confidence_loss_refuses_bad_input():
    with pytest.raises(ValueError, match="1 to 9"):
        pairwise_confidence_loss(torch.zeros(1, 2), torch.tensor([10]))
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        pairwise_confidence_loss(torch.zeros(1, 3), torch.tensor([5]))


def test_comparison_record_carries_a_confidence_that_agrees_with_best():
    assert Comparison(query="q", samples=["a", "b"], best=1, confidence=8).confidence == 8
    assert Comparison(query="q", samples=["a", "b"], best=0, confidence=5).confidence == 5
    with pytest.raises(ValueError, match="other sample"):
        Comparison(query="q", samples=["a", "b"], best=0, confidence=8)
    with pytest.raises(ValueError, match="K=2"):
        Comparison(query="q", samples=["a", "b", "c"], best=0, confidence=2)
