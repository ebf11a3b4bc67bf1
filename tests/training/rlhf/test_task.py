"""task.json: the task definition written beside a reward model and PPO checkpoints, and checked where a PPO
run meets its reward model (the CLI's path as much as the product's)."""
import json

import pytest
import torch

from training.rlhf.build import build_policy
from training.rlhf.config import ConfigError, PPOConfig, RewardFitConfig
from training.rlhf.models import RewardModel, build_tiny
from training.rlhf.task import (
    TASK_FILE,
    task_check,
    task_read,
    task_write,
    tokenizer_fingerprint,
    truncate_token_of,
)
from training.rlhf.tokenizer import ByteTokenizer


def reward_folder(tmp_path, **task):
    lm, tokenizer = build_tiny(seed=1)
    folder = tmp_path / "rm"
    RewardModel(lm).save_pretrained(folder, tokenizer)
    task_write(folder, RewardFitConfig(**task), tokenizer)
    return folder


def test_the_record_names_lengths_truncation_temperature_and_the_tokenizer(tmp_path):
    folder = reward_folder(tmp_path, query_length=16, response_length=8, truncate_token=46, truncate_after=2)
    record = json.loads((folder / TASK_FILE).read_text())
    assert record == {"query_length": 16, "response_length": 8, "temperature": 1.0, "truncate_token": 46,
                      "truncate_after": 2, "tokenizer": tokenizer_fingerprint(ByteTokenizer())}
    assert task_read(tmp_path) is None  # a folder written before the record: nothing to check
    task_check(tmp_path, PPOConfig(), ByteTokenizer(), "old")


def test_ppo_against_a_reward_model_of_another_task_is_refused_naming_each_field(tmp_path):
    folder = reward_folder(tmp_path, query_length=16, response_length=8)
    ok = PPOConfig(reward=str(folder), query_length=16, response_length=8, device="cpu")
    ok_device = torch.device("cpu")
    build_policy(ok, ok_device)
    bad = PPOConfig(reward=str(folder), query_length=16, response_length=12, temperature=0.7, device="cpu")
    with pytest.raises(ConfigError) as error:
        build_policy(bad, ok_device)
    assert "response_length: 12 here, 8 there" in str(error.value)
    assert set(error.value.fields) == {"response_length", "temperature"}


def test_another_vocabulary_is_refused():
    class Shifted(ByteTokenizer):
        def encode(self, text):
            return [i + 1 for i in super().encode(text)]

    assert tokenizer_fingerprint(Shifted()) != tokenizer_fingerprint(ByteTokenizer())


def test_truncation_text_is_one_token_or_the_eos():
    tokenizer = ByteTokenizer()
    assert truncate_token_of(tokenizer, ".") == 46
    assert truncate_token_of(tokenizer, "<eos>") == tokenizer.eos_token_id
    assert truncate_token_of(tokenizer, "") is None
    with pytest.raises(ConfigError, match="2 tokens of this tokenizer; it must be exactly one"):
        truncate_token_of(tokenizer, "ab")


def test_ppo_checkpoints_carry_the_record(tmp_path):
    from training.rlhf.build import build_trainer

    config = PPOConfig(total_episodes=8, batch_size=8, query_length=4, response_length=4, device="cpu",
                       checkpoint_dir=str(tmp_path / "ckpt"), whiten_rewards=False)
    trainer = build_trainer(config)
    folder = trainer.save_checkpoint(config.checkpoint_dir)
    assert task_read(folder)["response_length"] == 4
