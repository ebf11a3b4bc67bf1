"""Out of accelerator memory: the error names the settings that trade memory for time, and the last
checkpoint stays the newest (nothing is saved on the way out)."""
import pytest
import torch

from training.rlhf.build import build_trainer
from training.rlhf.checkpoint import latest_checkpoint
from training.rlhf.config import PPOConfig
from training.rlhf.oom import OutOfMemory
from training.rlhf.reward_model import fit
from tests.training.rlhf.helpers import marker_comparisons, small_reward_config


def test_ppo_out_of_memory_names_the_settings_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    config = PPOConfig(total_episodes=24, batch_size=8, query_length=4, response_length=4, device="cpu",
                       checkpoint_dir=str(tmp_path / "ckpt"), save_every=1, micro_batch_size=4, whiten_rewards=False)
    trainer = build_trainer(config)
    step = trainer.step
    calls = []

    def step_then_oom():
        calls.append(1)
        if len(calls) == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return step()

    monkeypatch.setattr(trainer, "step", step_then_oom)
    with pytest.raises(OutOfMemory) as error:
        trainer.train()
    message = str(error.value)
    assert "during PPO update 2" in message
    for setting in ("micro_batch_size (now 4", "forward_batch_size (now None", "gradient_checkpointing (now false",
                    "precision (now fp32"):
        assert setting in message
    assert isinstance(error.value.__cause__, torch.cuda.OutOfMemoryError)
    assert latest_checkpoint(config.checkpoint_dir).name == "step-00000001"


def test_reward_fit_out_of_memory_names_its_settings(monkeypatch):
    from training.rlhf import reward_model

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(reward_model, "best_of_k_loss", oom)
    with pytest.raises(OutOfMemory, match=r"during reward model fitting; lower or set micro_batch_size \(now None"):
        fit(small_reward_config(normalize="none", normalize_before=False, gradient_checkpointing=True),
            marker_comparisons(16))
