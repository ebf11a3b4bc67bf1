"""The "mean" reward readout: the head averaged over the response's real tokens, on every scoring path."""

import dataclasses
import json

import pytest
import torch

from training.rlhf.config import ConfigError, RewardFitConfig, config_from_dict, load_config
from training.rlhf.models import META_FILE, PolicyWithValue, RewardModel, build_tiny, packable_gpt2
from training.rlhf.reward_model import fit
from training.rlhf.tokenizer import pad_left, pad_right
from tests.training.rlhf.helpers import marker_comparisons, score_k_three_ways, small_reward_config

PAD = 257


def mean_model(seed: int = 2, n_layer: int = 2) -> RewardModel:
    rm = RewardModel(build_tiny(seed=seed, n_layer=n_layer)[0], head_seed=3, readout="mean")
    rm.set_normalization(1.5, -0.25)
    return rm


def test_mean_readout_is_the_normalised_mean_of_the_head_over_real_response_tokens():
    rm = mean_model()
    queries, query_mask = pad_left([[5, 6, 7, 8], [9, 10]], 5, pad_id=PAD)
    responses, response_mask = pad_right([[1, 2, 3], [4]], 4, pad_id=PAD)
    with torch.no_grad():
        rewards = rm.score(queries, query_mask, responses, response_mask)
        # By hand: each row alone (no pads), the head at every position, averaged over the response.
        expected = []
        for q, r in (([5, 6, 7, 8], [1, 2, 3]), ([9, 10], [4])):
            ids = torch.tensor([q + r])
            hidden = rm.lm.base_model(input_ids=ids).last_hidden_state[0]  # (L, d)
            per_token = hidden @ rm.head.weight[0] + rm.head.bias[0]  # (L,)
            expected.append(1.5 * per_token[len(q) :].mean() - 0.25)
    torch.testing.assert_close(rewards, torch.stack(expected), atol=1e-5, rtol=1e-5)
    # Not the last-token reward of the same weights.
    last = RewardModel(rm.lm, readout="last")
    last.load_state_dict(rm.state_dict())
    with torch.no_grad():
        assert not torch.allclose(last.score(queries, query_mask, responses, response_mask), rewards, atol=1e-3)


def test_mean_readout_of_an_empty_response_reads_the_querys_last_token_and_needs_response_start():
    rm = mean_model()
    queries, query_mask = pad_left([[5, 6, 7]], 4, pad_id=PAD)
    empty = torch.full((1, 3), PAD)
    with torch.no_grad():
        reward = rm.score(queries, query_mask, empty, torch.zeros_like(empty))
        last = RewardModel(rm.lm, readout="last")
        last.load_state_dict(rm.state_dict())
        torch.testing.assert_close(reward, last(queries, query_mask))
    with pytest.raises(ValueError, match="response_start"):
        rm.raw(queries, query_mask)
    with pytest.raises(ValueError, match="readout"):
        RewardModel(build_tiny()[0], readout="max")


def test_mean_readout_packed_cached_and_plain_paths_agree_in_value_and_gradient():
    """As the "last" test in test_models: K=3, a left-padded empty query, empty responses, all-pad
    columns the packed path trims, 3 layers (the last layer now runs at every response position)."""
    rm = mean_model(seed=4, n_layer=3)
    assert packable_gpt2(rm.lm)
    queries, query_mask = pad_left([[5, 6, 7, 8], [9, 10], [], [11, 12, 13]], 7, pad_id=PAD)
    rows = [[[1, 2, 3], [4, 5], [6]], [[7], [], [8, 9]], [[10, 11], [12], [13]], [[], [], []]]
    flat, flat_mask = pad_right([r for comparison in rows for r in comparison], 6, pad_id=PAD)
    responses, response_mask = flat.view(4, 3, 6), flat_mask.view(4, 3, 6)
    (packed, packed_grads), (cached, cached_grads), (plain, plain_grads) = score_k_three_ways(
        rm, queries, query_mask, responses, response_mask
    )
    assert torch.isfinite(packed).all()
    torch.testing.assert_close(packed, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)
    assert packed_grads.keys() == plain_grads.keys()
    for name in plain_grads:
        # Every response token now carries gradient, so gradients reach ~1e3: float32 rounding is
        # relative to each tensor's scale (measured 3e-7 of its max); a wrongly read token is O(1) of it.
        atol = 1e-5 * max(plain_grads[name].abs().max().item(), 1.0)
        torch.testing.assert_close(packed_grads[name], plain_grads[name], atol=atol, rtol=1e-4, msg=name)
        torch.testing.assert_close(cached_grads[name], plain_grads[name], atol=atol, rtol=1e-4, msg=name)
    assert packed.unique().numel() > 6


def test_readout_is_saved_with_the_weights_and_old_folders_read_last(tmp_path):
    lm, tokenizer = build_tiny(seed=1)
    rm = RewardModel(lm, head_seed=5, readout="mean")
    rm.set_normalization(2.5, -0.5)
    rm.save_pretrained(tmp_path / "rm", tokenizer)
    loaded, _ = RewardModel.from_pretrained(tmp_path / "rm")
    assert loaded.readout == "mean"
    queries, query_mask = pad_left([[5, 6]], 3, pad_id=PAD)
    responses, response_mask = pad_right([[1, 2, 3]], 4, pad_id=PAD)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.score(queries, query_mask, responses, response_mask),
            rm.score(queries, query_mask, responses, response_mask),
        )
    # A folder written before the readout existed has no "readout" key: the 2019 reward.
    (tmp_path / "rm" / META_FILE).write_text(json.dumps({"kind": "reward_model"}))
    assert RewardModel.from_pretrained(tmp_path / "rm")[0].readout == "last"
    # The separate value model (a reward model copy read per token) keeps the readout too.
    policy = PolicyWithValue.with_value_from_reward_model(build_tiny()[0], rm)
    policy.save_pretrained(tmp_path / "policy", tokenizer)
    assert PolicyWithValue.from_pretrained(tmp_path / "policy")[0].value_model.readout == "mean"


def test_reward_config_readout_validates_and_round_trips(tmp_path):
    assert RewardFitConfig().readout == "last"
    config = RewardFitConfig(readout="mean")
    (tmp_path / "rm.json").write_text(json.dumps(dataclasses.asdict(config)))
    (tmp_path / "rm.yaml").write_text("readout: mean\n")
    assert load_config(RewardFitConfig, tmp_path / "rm.json") == config
    assert load_config(RewardFitConfig, tmp_path / "rm.yaml") == config
    assert config_from_dict(RewardFitConfig, dataclasses.asdict(config)).validate() == config
    with pytest.raises(ConfigError, match="readout"):
        RewardFitConfig(readout="first").validate()


def test_fit_with_mean_readout_learns_a_token_count_preference(tmp_path):
    config = small_reward_config(normalize_samples=64, readout="mean")
    result = fit(config, marker_comparisons(512))
    assert result.model.readout == "mean"
    assert result.metrics["valid/accuracy"] >= 0.9
    assert result.metrics["train/loss"] < 0.5 * torch.log(torch.tensor(4.0)).item()
