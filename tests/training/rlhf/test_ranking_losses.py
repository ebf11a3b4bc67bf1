"""The losses of the ranking, Likert and "none acceptable" answers (losses.ranking_loss, plackett_luce_loss,
likert_ranks, acceptability_loss), against numbers worked out by hand."""
import math

import pytest
import torch

from training.rlhf.losses import (
    acceptability_loss,
    best_of_k_loss,
    likert_ranks,
    pairwise_loss,
    plackett_luce_loss,
    ranking_loss,
)

# softplus(-x) = -log sigmoid(x), worked out once: log(1 + e^-1), log(1 + e^-2), log(1 + e^1).
SP_NEG1 = 0.31326168751822286  # -log sigmoid(1)
SP_NEG2 = 0.12692801104297252  # -log sigmoid(2)
SP_POS1 = 1.3132616875182228  # -log sigmoid(-1)
LSE_1_0_M1 = 1.4076059644443804  # log(e^1 + e^0 + e^-1) = log(4.0861613)
LSE_0_M1 = 0.31326168751822286  # log(e^0 + e^-1) = log(1.3678794)


def test_ranking_loss_hand_computed_with_a_tie():
    # ranks [1, 2, 2]: pairs (0,1), (0,2); samples 1 and 2 tie, no term. Mean of -log s(1), -log s(2).
    rewards = torch.tensor([[1.0, 0.0, -1.0]])
    loss = ranking_loss(rewards, torch.tensor([[1, 2, 2]]))
    assert math.isclose(loss.item(), (SP_NEG1 + SP_NEG2) / 2, rel_tol=1e-6)


def test_ranking_loss_full_order_divides_by_k_choose_2_and_means_over_comparisons():
    # Row 0, ranks [3, 1, 2] on rewards [1, 0, -1]: pairs (1,0): -log s(-1); (1,2): -log s(1); (2,0): -log s(-2)
    # = log(1 + e^2) = 2.1269280. Mean of the 3 pairs = (1.3132617 + 0.3132617 + 2.1269280) / 3 = 1.2511505.
    # Row 1, ranks [1, 2] on [0, 0]: log 2 = 0.6931472. Rows are padded to one K only in a batch, so two calls.
    row0 = ranking_loss(torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[3, 1, 2]]))
    assert math.isclose(row0.item(), 1.2511505, rel_tol=1e-6)
    both = ranking_loss(torch.tensor([[1.0, 0.0, -1.0], [1.0, 0.0, -1.0]]), torch.tensor([[3, 1, 2], [1, 2, 2]]))
    assert math.isclose(both.item(), (1.2511505 + (SP_NEG1 + SP_NEG2) / 2) / 2, rel_tol=1e-6)


def test_an_all_tied_comparison_contributes_nothing():
    rewards = torch.tensor([[1.0, 0.0, -1.0], [5.0, -3.0, 0.5]])
    ranks = torch.tensor([[1, 2, 2], [1, 1, 1]])
    # The tied row is out of the mean, not a zero in it: the loss is row 0's alone.
    assert math.isclose(ranking_loss(rewards, ranks).item(), (SP_NEG1 + SP_NEG2) / 2, rel_tol=1e-6)
    assert math.isclose(plackett_luce_loss(rewards, ranks).item(), LSE_1_0_M1 - 1.0, rel_tol=1e-6)
    tied = torch.tensor([[5.0, -3.0, 0.5]], requires_grad=True)
    for loss_fn in (ranking_loss, plackett_luce_loss):
        loss = loss_fn(tied, torch.tensor([[1, 1, 1]]))
        loss.backward()
        assert loss.item() == 0.0 and tied.grad.abs().sum().item() == 0.0
        tied.grad = None


def test_plackett_luce_hand_computed_full_order():
    # ranks [1, 2, 3] on [1, 0, -1]: sample 0 chosen from all, then 1 from {1, 2}, sample 2 is what is left.
    # (log(e + 1 + e^-1) - 1) + (log(1 + e^-1) - 0) = 0.4076060 + 0.3132617.
    loss = plackett_luce_loss(torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[1, 2, 3]]))
    assert math.isclose(loss.item(), (LSE_1_0_M1 - 1.0) + LSE_0_M1, rel_tol=1e-6)


def test_plackett_luce_breslow_tie_hand_computed():
    # ranks [1, 1, 2] on [1, 0, -1]: samples 0 and 1 are each chosen from all three (tier mate included):
    # (lse - 1) + (lse - 0) = 2 * 1.4076060 - 1 = 1.8152119; the last tier {2} gives no term.
    loss = plackett_luce_loss(torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[1, 1, 2]]))
    assert math.isclose(loss.item(), 2 * LSE_1_0_M1 - 1.0, rel_tol=1e-6)
    # A tie in the last tier: ranks [1, 2, 2] is sample 0 chosen from all, nothing else: lse - 1 = 0.4076060.
    loss = plackett_luce_loss(torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([[1, 2, 2]]))
    assert math.isclose(loss.item(), LSE_1_0_M1 - 1.0, rel_tol=1e-6)


def test_plackett_luce_sums_per_comparison_and_means_over_comparisons():
    rewards = torch.tensor([[1.0, 0.0, -1.0], [1.0, 0.0, -1.0]])
    loss = plackett_luce_loss(rewards, torch.tensor([[1, 2, 3], [1, 1, 2]]))
    assert math.isclose(loss.item(), ((LSE_1_0_M1 - 1.0 + LSE_0_M1) + (2 * LSE_1_0_M1 - 1.0)) / 2, rel_tol=1e-6)


def test_k2_without_ties_both_ranking_losses_are_the_pairwise_and_best_of_k_loss():
    torch.manual_seed(0)
    rewards = torch.randn(16, 2)
    best = torch.randint(0, 2, (16,))
    ranks = torch.where(torch.arange(2) == best[:, None], 1, 2)  # (16, 2): the best sample ranks 1
    chosen = rewards.gather(1, best[:, None]).squeeze(1)
    rejected = rewards.gather(1, (1 - best)[:, None]).squeeze(1)
    expected = pairwise_loss(chosen, rejected)
    torch.testing.assert_close(ranking_loss(rewards, ranks), expected)
    torch.testing.assert_close(plackett_luce_loss(rewards, ranks), expected)
    torch.testing.assert_close(plackett_luce_loss(rewards, ranks), best_of_k_loss(rewards, best))


def test_ranking_losses_ignore_a_shared_shift_and_prefer_the_ranked_order():
    ranks = torch.tensor([[2, 1, 3, 1]])
    agree = torch.tensor([[0.0, 2.0, -2.0, 2.0]])
    disagree = torch.tensor([[0.0, -2.0, 2.0, -2.0]])
    for loss_fn in (ranking_loss, plackett_luce_loss):
        torch.testing.assert_close(loss_fn(agree + 3.5, ranks), loss_fn(agree, ranks))
        assert loss_fn(agree, ranks) < loss_fn(disagree, ranks)


@pytest.mark.parametrize("loss_fn", [ranking_loss, plackett_luce_loss])
def test_gradients_flow_finite_and_non_zero(loss_fn):
    torch.manual_seed(1)
    rewards = torch.randn(4, 5, requires_grad=True)
    ranks = torch.tensor([[1, 2, 2, 3, 4], [2, 1, 3, 3, 1], [1, 1, 1, 1, 1], [5, 4, 3, 2, 1]])
    loss_fn(rewards, ranks).backward()
    grad = rewards.grad
    assert torch.isfinite(grad).all()
    assert grad[[0, 1, 3]].abs().sum(-1).gt(0).all()  # every informative row moves
    assert grad[2].abs().sum().item() == 0.0  # the all-tied row does not
    torch.testing.assert_close(grad.sum(-1), torch.zeros(4), atol=1e-6, rtol=0)  # shift invariance: grads sum to 0


def test_ranking_losses_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="ranks"):
        ranking_loss(torch.zeros(2, 3), torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="ranks"):
        plackett_luce_loss(torch.zeros(3), torch.ones(3, dtype=torch.long))


def test_likert_ranks_dense_higher_is_better():
    ratings = torch.tensor([[3, 7, 3, 5], [4, 4, 4, 4], [1, 2, 3, 4], [7, 1, 7, 1]])
    assert likert_ranks(ratings).tolist() == [[3, 1, 3, 2], [1, 1, 1, 1], [4, 3, 2, 1], [1, 2, 1, 2]]


def test_likert_ranks_feed_the_ranking_loss():
    # Ratings [6, 2, 2] -> ranks [1, 2, 2]: the same loss as the hand-computed tie above.
    loss = ranking_loss(torch.tensor([[1.0, 0.0, -1.0]]), likert_ranks(torch.tensor([[6, 2, 2]])))
    assert math.isclose(loss.item(), (SP_NEG1 + SP_NEG2) / 2, rel_tol=1e-6)


def test_acceptability_loss_hand_computed():
    # r_best 1 and -1 with some sample acceptable (target 1): -log s(1), -log s(-1); none acceptable at r_best 1
    # (target 0): -log(1 - s(1)) = -log s(-1).
    best = torch.tensor([1.0, -1.0, 1.0])
    none = torch.tensor([False, False, True])
    assert math.isclose(acceptability_loss(best, none).item(), (SP_NEG1 + SP_POS1 + SP_POS1) / 3, rel_tol=1e-6)
    # The threshold shifts the logit: r_best = 1 against threshold 2 is logit -1.
    assert math.isclose(acceptability_loss(torch.tensor([1.0]), torch.tensor([False]), threshold=2.0).item(),
                        SP_POS1, rel_tol=1e-6)


def test_acceptability_loss_pushes_none_acceptable_down_and_acceptable_up():
    best = torch.tensor([0.5, 0.5], requires_grad=True)
    acceptability_loss(best, torch.tensor([True, False])).backward()
    assert best.grad[0] > 0 > best.grad[1]  # gradient descent lowers the first, raises the second


def test_acceptability_loss_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="none_acceptable"):
        acceptability_loss(torch.zeros(3), torch.zeros(2, dtype=torch.bool))
