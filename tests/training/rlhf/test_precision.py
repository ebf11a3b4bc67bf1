"""Mixed precision: bf16/fp16 autocast over fp32 master weights trains (nearly every weight that fp32
moves moves under bf16-mixed too) and tracks fp32; pure low-precision training is refused."""

import pytest
import torch

from tests.training.rlhf.helpers import devices, marker_comparisons, small_reward_config
from tests.training.rlhf.test_ppo import make_trainer, small_config
from training.rlhf.config import ConfigError, PPOConfig, RewardFitConfig
from training.rlhf.models import RewardModel, build_tiny
from training.rlhf.precision import allow_tf32, autocast, frozen_dtype
from training.rlhf.reward_model import fit

# Tolerances (10 steps at lr 1e-5 on the tiny model; measured gaps are about a fifth of these):
# PPO value loss within 1% of fp32's at every step, KL within 0.002 nats, the score the same within 0.02;
# reward fitting's training loss within 0.01 nats (about 1% of log 4) at every step.
PPO_VALUE_LOSS_RTOL, PPO_KL_ATOL, PPO_SCORE_ATOL = 0.01, 0.002, 0.02
FIT_LOSS_ATOL = 0.01


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def moved(before: dict[str, torch.Tensor], model: torch.nn.Module) -> torch.Tensor:
    """One flat bool per trained parameter element: did it change?"""
    params = dict(model.named_parameters())
    return torch.cat([(params[n].detach() != p).flatten() for n, p in before.items()])


def ppo_run(precision: str):
    torch.manual_seed(0)
    trainer = make_trainer(small_config(precision=precision, lr=1e-5, batch_size=16, total_episodes=160))
    before = snapshot(trainer.policy)
    result = trainer.train()
    return trainer, moved(before, trainer.policy), result.metrics


def fit_run(precision: str):
    config = small_reward_config(
        precision=precision, lr=1e-5, batch_size=8, log_every=1, normalize_before=False, normalize="none",
        valid_fraction=0.0,
    )
    logs = []
    before = snapshot(RewardModel(build_tiny(seed=0)[0], head_seed=config.seed))  # fit's initial model
    result = fit(config, marker_comparisons(80), on_log=logs.append)
    return result.model, moved(before, result.model), [m["train/loss"] for m in logs if "train/loss" in m]


def test_bf16_mixed_ppo_moves_the_weights_fp32_moves_and_tracks_its_curves():
    trainer, moved32, metrics32 = ppo_run("fp32")
    trainer16, moved16, metrics16 = ppo_run("bf16-mixed")
    assert len(metrics16) == 10
    # Elements fp32 never moves get no gradient (unused positions, for instance); of the rest, >= 99% move.
    assert moved32.float().mean() > 0.8
    assert (moved16 & moved32).sum() >= 0.99 * moved32.sum()
    # Master weights and Adam state are fp32; the frozen reference is held in bf16.
    assert all(p.dtype == torch.float32 for p in trainer16.policy.parameters())
    assert all(s.dtype == torch.float32 for st in trainer16.optimizer.state.values() for s in st.values()
               if s.is_floating_point() and s.dim() > 0)
    assert next(trainer16.ref_policy.parameters()).dtype == torch.bfloat16
    for a, b in zip(metrics32, metrics16):
        assert b["ppo/loss/value"] == pytest.approx(a["ppo/loss/value"], rel=PPO_VALUE_LOSS_RTOL)
        assert b["objective/kl"] == pytest.approx(a["objective/kl"], abs=PPO_KL_ATOL)
        assert b["objective/score"] == pytest.approx(a["objective/score"], abs=PPO_SCORE_ATOL)
        # Rollout and training forward share the precision: their log-probs differ by rounding only.
        assert a["ppo/policy/logprob_mismatch"] < 1e-4
        assert 0 < b["ppo/policy/logprob_mismatch"] < 0.01


def test_fp16_mixed_ppo_scales_the_loss_and_trains():
    trainer, moved16, metrics = ppo_run("fp16-mixed")
    _, moved32, _ = ppo_run("fp32")
    assert trainer.scaler.is_enabled() and trainer.state_dict()["scaler"]["scale"] > 0
    assert (moved16 & moved32).sum() >= 0.99 * moved32.sum()
    assert all(p.dtype == torch.float32 for p in trainer.policy.parameters())
    assert next(trainer.ref_policy.parameters()).dtype == torch.float32  # fp16 frozen copies are not used
    assert all(m["ppo/policy/logprob_mismatch"] < 0.01 for m in metrics)


def test_bf16_mixed_reward_fit_moves_the_weights_fp32_moves_and_tracks_its_loss():
    _, moved32, loss32 = fit_run("fp32")
    model16, moved16, loss16 = fit_run("bf16-mixed")
    assert len(loss16) == 10 and moved32.float().mean() > 0.7
    assert (moved16 & moved32).sum() >= 0.99 * moved32.sum()
    assert all(p.dtype == torch.float32 for p in model16.parameters())
    assert loss16 == pytest.approx(loss32, abs=FIT_LOSS_ATOL)


def test_fp16_mixed_reward_fit_trains():
    _, moved32, _ = fit_run("fp32")
    _, moved16, loss16 = fit_run("fp16-mixed")
    assert (moved16 & moved32).sum() >= 0.99 * moved32.sum()
    assert all(0 < loss < 2 for loss in loss16)


@pytest.mark.parametrize("cls", [RewardFitConfig, PPOConfig])
@pytest.mark.parametrize(("dtype", "mode"), [("bfloat16", "bf16-mixed"), ("float16", "fp16-mixed")])
def test_pure_low_precision_training_is_refused_naming_the_mode_to_use(cls, dtype, mode):
    with pytest.raises(ConfigError, match=rf"dtype='{dtype}'.*no longer supported.*precision='{mode}'"):
        cls(dtype=dtype).validate()


@pytest.mark.parametrize("cls", [RewardFitConfig, PPOConfig])
def test_unknown_precision_is_refused(cls):
    with pytest.raises(ConfigError, match="precision must be one of"):
        cls(precision="bf16").validate()
    assert cls().precision == "fp32" and cls(precision="bf16-mixed").validate()


def test_autocast_and_frozen_dtype_per_mode():
    layer = torch.nn.Linear(4, 4)
    cpu = torch.device("cpu")
    for precision, dtype in (("fp32", torch.float32), ("bf16-mixed", torch.bfloat16), ("fp16-mixed", torch.float16)):
        with autocast(precision, cpu):
            assert layer(torch.randn(2, 4)).dtype == dtype
    assert [frozen_dtype(p) for p in ("fp32", "bf16-mixed", "fp16-mixed")] == [
        torch.float32, torch.bfloat16, torch.float32
    ]


@pytest.fixture
def matmul_precision():
    before = torch.get_float32_matmul_precision()
    yield
    torch.set_float32_matmul_precision(before)


def test_tf32_is_set_for_cuda_only(matmul_precision):
    torch.set_float32_matmul_precision("highest")
    allow_tf32(True, torch.device("cpu"))
    assert torch.get_float32_matmul_precision() == "highest"  # CPU: nothing changes
    allow_tf32(True, torch.device("cuda"))
    assert torch.get_float32_matmul_precision() == "high"
    allow_tf32(False, torch.device("cuda", 1))
    assert torch.get_float32_matmul_precision() == "highest"
    assert PPOConfig().tf32 and RewardFitConfig().tf32  # on by default


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize(("tf32", "on_cuda"), [(True, "high"), (False, "highest")])
def test_a_reward_fit_applies_its_tf32_setting_on_cuda_only(matmul_precision, device, tf32, on_cuda):
    torch.set_float32_matmul_precision("medium")
    fit(small_reward_config(device=device, tf32=tf32, epochs=1), marker_comparisons(16))
    assert torch.get_float32_matmul_precision() == (on_cuda if device == "cuda" else "medium")
