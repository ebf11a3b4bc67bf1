import pytest

from training.rlhf.kl import AdaptiveKL, FixedKL


def test_fixed_kl_never_moves():
    kl = FixedKL(0.2)
    kl.update(current_kl=100.0, n_steps=512)
    assert kl.value == 0.2


def test_adaptive_kl_hand_computed():
    """KL 7.2 vs target 6: e = 0.2, beta = 0.15 * (1 + 0.2 * 512 / 10000)."""
    kl = AdaptiveKL(0.15, target=6.0, horizon=10000)
    kl.update(current_kl=7.2, n_steps=512)
    assert kl.value == pytest.approx(0.15 * (1 + 0.2 * 0.0512))


def test_adaptive_kl_moves_beta_toward_target():
    above, below, at = AdaptiveKL(1.0, 6.0, 100), AdaptiveKL(1.0, 6.0, 100), AdaptiveKL(1.0, 6.0, 100)
    above.update(current_kl=7.0, n_steps=10)
    below.update(current_kl=5.0, n_steps=10)
    at.update(current_kl=6.0, n_steps=10)
    assert above.value > 1.0 > below.value
    assert at.value == 1.0


def test_adaptive_kl_step_is_clipped_to_twenty_percent_of_n_over_horizon():
    far_above, far_below = AdaptiveKL(1.0, 1.0, 100), AdaptiveKL(1.0, 1.0, 100)
    far_above.update(current_kl=1000.0, n_steps=50)
    far_below.update(current_kl=0.0, n_steps=50)
    assert far_above.value == pytest.approx(1.0 + 0.2 * 0.5)
    assert far_below.value == pytest.approx(1.0 - 0.2 * 0.5)


def test_adaptive_kl_state_round_trips():
    kl = AdaptiveKL(0.15, 6.0, 10000)
    kl.update(9.0, 512)
    other = AdaptiveKL(1.0, 1.0, 1)
    other.load_state_dict(kl.state_dict())
    assert (other.value, other.target, other.horizon) == (kl.value, 6.0, 10000)


def test_adaptive_kl_rejects_nonpositive_target():
    with pytest.raises(ValueError, match="target"):
        AdaptiveKL(0.1, target=0.0, horizon=100)
