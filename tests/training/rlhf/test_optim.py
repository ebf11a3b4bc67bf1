import math

import pytest
import torch

from training.rlhf.optim import TFAdam, make_optimizer, scheduled_lr


def test_tf_adam_first_step_puts_epsilon_outside_the_bias_correction():
    """Step 1: m = 0.1 g, v = 0.001 g^2, step size lr * sqrt(0.001) / 0.1, eps added to raw sqrt(v)."""
    g = torch.tensor([0.5, -0.25, 1e-4])
    p = torch.nn.Parameter(torch.zeros(3))
    opt = TFAdam([p], lr=0.1, eps=1e-5)
    p.grad = g.clone()
    opt.step()
    m, v = 0.1 * g, 0.001 * g * g
    expected = -0.1 * math.sqrt(0.001) / 0.1 * m / (v.sqrt() + 1e-5)
    torch.testing.assert_close(p.detach(), expected)


def test_tf_adam_takes_smaller_steps_than_torch_adam_for_small_gradients():
    """The 2019 pitfall: with the same eps, torch's Adam moves tiny-gradient weights further."""
    moves = {}
    for style in ("tf", "torch"):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = make_optimizer([p], lr=1e-3, eps=1e-5, style=style)
        p.grad = torch.tensor([1e-6])
        opt.step()
        moves[style] = abs(p.item())
    assert moves["tf"] < moves["torch"] / 5


def test_tf_adam_state_round_trips_through_state_dict():
    p = torch.nn.Parameter(torch.ones(2))
    opt = TFAdam([p], lr=0.01)
    p.grad = torch.tensor([1.0, 2.0])
    opt.step()
    clone = TFAdam([torch.nn.Parameter(p.detach().clone())], lr=0.01)
    clone.load_state_dict(opt.state_dict())
    assert clone.state_dict()["state"][0]["step"].item() == 1.0
    torch.testing.assert_close(clone.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_learning_rate_schedules():
    assert scheduled_lr(1.0, 0, 4) == 1.0
    assert scheduled_lr(1.0, 3, 4) == 0.25
    assert scheduled_lr(1.0, 2, 4, "cosine") == pytest.approx(0.5)
    assert scheduled_lr(1.0, 3, 4, "constant") == 1.0
    with pytest.raises(ValueError, match="adam_style"):
        make_optimizer([torch.nn.Parameter(torch.zeros(1))], lr=1.0, eps=1e-5, style="sgd")
