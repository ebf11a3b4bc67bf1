import dataclasses
import json

import pytest

from training.rlhf.config import ConfigError, PPOConfig, RewardFitConfig, config_from_dict, load_config
from training.rlhf.data import Comparison, load_comparisons


def test_configs_round_trip_through_json_and_yaml(tmp_path):
    config = PPOConfig(batch_size=32, adaptive_kl=True, kl_target=6.0, truncate_token=46, truncate_after=4)
    (tmp_path / "c.json").write_text(json.dumps(dataclasses.asdict(config)))
    (tmp_path / "c.yaml").write_text("batch_size: 32\nadaptive_kl: true\nkl_target: 6.0\n")
    assert load_config(PPOConfig, tmp_path / "c.json") == config
    assert load_config(PPOConfig, tmp_path / "c.yaml").kl_target == 6.0
    assert config.validate() is config
    assert PPOConfig(total_episodes=100, batch_size=64).n_updates == 2


def test_defaults_follow_the_2019_code():
    ppo, rm = PPOConfig(), RewardFitConfig()
    assert (ppo.noptepochs, ppo.cliprange, ppo.cliprange_value, ppo.vf_coef) == (4, 0.2, 0.2, 0.1)
    assert (ppo.gamma, ppo.lam, ppo.whiten_rewards, ppo.adam_eps, ppo.adam_style) == (1.0, 0.95, True, 1e-5, "tf")
    assert (ppo.penalty_reward_value, ppo.value_model) == (-1.0, "shared")
    assert (rm.epochs, rm.lr_schedule, rm.normalize, rm.normalize_samples) == (1, "linear", "samples", 256)
    assert rm.normalize_before is True  # as the 2019 launched configs (HParams' own default is off)


def test_reward_config_round_trips_normalize_before(tmp_path):
    config = RewardFitConfig(normalize_before=False, normalize="references", normalize_samples=64)
    (tmp_path / "rm.json").write_text(json.dumps(dataclasses.asdict(config)))
    (tmp_path / "rm.yaml").write_text("normalize_before: false\nnormalize: references\nnormalize_samples: 64\n")
    assert load_config(RewardFitConfig, tmp_path / "rm.json") == config
    assert load_config(RewardFitConfig, tmp_path / "rm.yaml") == config
    assert config_from_dict(RewardFitConfig, dataclasses.asdict(config)).validate() == config
    # The before-step scores normalize_samples too, even with no after-step.
    with pytest.raises(ConfigError, match="normalize_samples"):
        RewardFitConfig(normalize="none", normalize_samples=1).validate()
    assert RewardFitConfig(normalize="none", normalize_before=False, normalize_samples=1).validate()


def test_validate_lists_every_problem():
    with pytest.raises(ConfigError) as error:
        PPOConfig(temperature=0, truncate_after=99, value_model="both", lr=-1).validate()
    message = str(error.value)
    for field in ("temperature", "truncate_after", "value_model", "lr"):
        assert field in message
    with pytest.raises(ConfigError, match="unknown RewardFitConfig fields: epoch"):
        config_from_dict(RewardFitConfig, {"epoch": 2})


def test_errors_are_kept_by_field_for_forms():
    with pytest.raises(ConfigError) as error:
        PPOConfig(temperature=0, gamma=2.0, lam=-1, nminibatches=3, lr=-1, save_every=-1).validate()
    fields = error.value.fields
    assert set(fields) == {"temperature", "gamma", "lam", "nminibatches", "lr", "save_every"}
    assert fields["gamma"] == ["gamma must be in (0, 1], got 2.0"]
    with pytest.raises(ConfigError) as error:
        PPOConfig(decoding="paged").validate()
    assert error.value.fields == {
        "decoding": ["decoding must be one of ('auto', 'dynamic', 'static', 'cuda-graph'), got 'paged'"]}
    with pytest.raises(ConfigError) as error:
        config_from_dict(PPOConfig, {"kl_coeff": 0.1, "lr": 1e-5})
    assert error.value.fields == {"kl_coeff": ["unknown field 'kl_coeff' (did you mean 'kl_coef'?)"]}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("lr", "fast", "lr must be a number, got 'fast'"),
    ("batch_size", 8.5, "batch_size must be a whole number, got 8.5"),
    ("batch_size", True, "batch_size must be a whole number, got True"),
    ("adaptive_kl", "yes", "adaptive_kl must be true or false, got 'yes'"),
    ("kl_target", "6", "kl_target must be a number or null, got '6'"),
    ("policy_model", None, "policy_model must not be null"),
    ("extra", [1], "extra must be a mapping"),
])
def test_values_of_the_wrong_json_type_are_named_before_validate(field, value, message):
    with pytest.raises(ConfigError) as error:
        config_from_dict(PPOConfig, {field: value})
    assert error.value.fields == {field: [message]}
    assert config_from_dict(PPOConfig, {"lr": 1, "kl_target": None, "truncate_token": 46}).lr == 1


def test_comparisons_load_from_2019_jsonl_layout(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"query": [1, 2], "sample0": [3], "sample1": [4], "sample2": [5], "best": 2}) + "\n")
    assert load_comparisons(path) == [Comparison(query=[1, 2], samples=[[3], [4], [5]], best=2)]
    path.write_text(json.dumps({"query": "q", "sample0": "a", "best": 0}) + "\n")
    with pytest.raises(ValueError, match="K >= 2"):
        load_comparisons(path)
    with pytest.raises(ValueError, match="best=3"):
        Comparison(query="q", samples=["a", "b"], best=3)


def test_fp16_with_fsdp_over_several_ranks_is_refused_naming_precision():
    config = PPOConfig(strategy="fsdp", precision="fp16-mixed", batch_size=16, nminibatches=1)
    config.validate(world_size=1)  # alone, fsdp is plain training: allowed
    with pytest.raises(ConfigError) as error:
        config.validate(world_size=2)
    assert "precision" in error.value.fields
    PPOConfig(strategy="fsdp", precision="bf16-mixed", batch_size=16, nminibatches=1).validate(world_size=2)
