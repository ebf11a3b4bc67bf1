"""Reward fitting: smoke run on synthetic best-of-4 data, normalisation, stop requests, data input."""

import math
import random

import pytest
import torch

from training.rlhf.config import ConfigError
from training.rlhf.data import Comparison, load_comparisons
from training.rlhf.losses import best_of_k_loss
from training.rlhf.models import RewardModel, build_tiny
from training.rlhf.optim import make_optimizer
from training.rlhf.precision import make_scaler
from training.rlhf.reward_model import (
    _batch_step,
    comparison_rewards,
    encode_comparisons,
    fit,
    held_out_split,
    score_policy_samples,
)
from training.rlhf.rewards import fit_normalization
from training.rlhf.tokenizer import ByteTokenizer, pad_left, pad_right
from tests.training.rlhf.helpers import assert_gradients_close, marker_comparisons, small_reward_config




def test_fit_learns_marker_preference_and_normalises_on_policy_samples():
    """512 best-of-4 comparisons, one epoch: >= 90% validation accuracy; rho samples then score
    mean 0 and population std 1."""
    logs = []
    result = fit(small_reward_config(), marker_comparisons(512), on_log=logs.append)
    assert not result.stopped
    assert result.metrics["valid/accuracy"] >= 0.9
    before, logs = logs[0], logs[1:]  # normalize_before is on by default (2019 launched configs)
    assert before["step"] == 0 and before["normalization_before/samples"] == 128
    assert before["normalization_before/gain"] == pytest.approx(1 / before["normalization_before/raw_std"])
    assert logs[0]["train/loss"] < math.log(4) + 0.2
    assert logs[-1]["train/loss"] < 0.5 * math.log(4)
    assert {"train/loss", "train/accuracy", "valid/accuracy", "normalization/gain", "normalization/bias"} <= set(
        logs[-1]
    )
    assert [m["step"] for m in logs] == [5, 10, 15, 20, 25, 29]
    # Same seed, same rho samples: the stored gain/bias map them to mean 0, std 1.
    data = encode_comparisons(marker_comparisons(512), ByteTokenizer(), 8, 16)
    raw = score_policy_samples(result.model, data.queries, data.query_mask, small_reward_config(), None, torch.device("cpu"))
    normed = result.model.gain * raw.double() + result.model.bias
    assert normed.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert normed.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    assert result.model.gain.item() == pytest.approx(result.metrics["normalization/gain"])


def test_fit_is_deterministic_for_a_seed():
    a = fit(small_reward_config(normalize="none", valid_fraction=0.0), marker_comparisons(64))
    b = fit(small_reward_config(normalize="none", valid_fraction=0.0), marker_comparisons(64))
    assert torch.equal(a.model.head.weight, b.model.head.weight)
    assert a.metrics["train/loss"] == b.metrics["train/loss"]


def test_held_out_split_keeps_every_comparisons_labels_on_one_side():
    """Up to three labels per comparison: no group is on both sides, the held-out share counts groups,
    and the split is the same for a seed."""
    rng = random.Random(5)
    records = [Comparison("q", ["a", "b"], 0, group=g) for g in range(40) for _ in range(rng.randint(1, 3))]
    rng.shuffle(records)
    train, valid = held_out_split(records, 0.25, torch.Generator().manual_seed(1))
    assert sorted(train.tolist() + valid.tolist()) == list(range(len(records)))
    train_groups, valid_groups = ({records[i].group for i in rows.tolist()} for rows in (train, valid))
    assert not train_groups & valid_groups and len(valid_groups) == 10
    again = held_out_split(records, 0.25, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], train) and torch.equal(again[1], valid)


def test_held_out_split_without_groups_is_the_row_permutation():
    """Records without a group (the 2019 files) are split by row, as before groups existed."""
    records = marker_comparisons(20)
    train, valid = held_out_split(records, 0.2, torch.Generator().manual_seed(3))
    order = torch.randperm(20, generator=torch.Generator().manual_seed(3))
    assert torch.equal(valid, order[:4]) and torch.equal(train, order[4:])


def test_load_comparisons_groups_rows_by_comparison_id(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"query": "q", "sample0": "a", "sample1": "b", "best": 1, "comparison_id": 7}\n'
                    '{"query": "q", "sample0": "a", "sample1": "b", "best": 0}\n')
    assert [(c.best, c.group) for c in load_comparisons(path)] == [(1, 7), (0, None)]


def test_fit_accepts_token_ids_and_pairwise_comparisons():
    tok = ByteTokenizer()
    pairs = [
        Comparison(query=tok.encode(c.query), samples=[tok.encode(s) for s in c.samples[:2]], best=0)
        for c in marker_comparisons(32)
    ]
    result = fit(small_reward_config(normalize="none"), pairs)
    assert math.isfinite(result.metrics["train/loss"])


def test_reference_normalisation_shifts_references_to_mean_zero():
    references = [("query one", "abc ###"), ("query two", "de #"), ("query three", "fghij")]
    result = fit(
        small_reward_config(normalize="references", normalize_before=False), marker_comparisons(32), references=references
    )
    tok = ByteTokenizer()

    q, qm = pad_left([tok.encode(q) for q, _ in references], 8, tok.pad_token_id)
    r, rm = pad_right([tok.encode(r) for _, r in references], 16, tok.pad_token_id)
    with torch.no_grad():
        scores = result.model.score(q, qm, r, rm)
    assert result.model.gain.item() == 1.0
    assert scores.mean().item() == pytest.approx(0.0, abs=1e-5)


def test_fit_stops_when_asked_and_skips_normalisation():
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    result = fit(small_reward_config(normalize_before=False), marker_comparisons(128), should_stop=should_stop)
    assert result.stopped
    assert result.model.gain.item() == 1.0 and "normalization/gain" not in result.metrics


def test_invalid_config_names_the_field():
    with pytest.raises(ConfigError, match="valid_fraction"):
        small_reward_config(valid_fraction=1.5).validate()
    with pytest.raises(ValueError, match="same number of samples"):
        encode_comparisons([Comparison("q", ["a", "b"], 0), Comparison("q", ["a", "b", "c"], 0)], ByteTokenizer(), 4, 4)


def base_policy_samples(n: int, seed: int = 3) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [
        (
            "".join(rng.choice("klmnop") for _ in range(8)),
            "".join(rng.choice("abc #") for _ in range(rng.randint(1, 16))),
        )
        for _ in range(n)
    ]


def raw_and_scores(model: RewardModel, pairs: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
    tok = ByteTokenizer()
    q, qm = pad_left([tok.encode(q) for q, _ in pairs], 8, tok.pad_token_id)
    r, rm = pad_right([tok.encode(r) for _, r in pairs], 16, tok.pad_token_id)
    with torch.no_grad():
        return model.raw(torch.cat([q, r], 1), torch.cat([qm, rm], 1)).double(), model.score(q, qm, r, rm).double()


def test_normalize_before_fits_gain_and_bias_on_the_callers_base_policy_samples():
    """Stopped before the first step, the model is as the before-step left it: its rewards on the first
    normalize_samples of the caller's samples have mean 0 and population std 1."""
    base = base_policy_samples(40)
    logs = []
    result = fit(
        small_reward_config(normalize_samples=32),
        marker_comparisons(32),
        on_log=logs.append,
        should_stop=lambda: True,
        base_samples=base,
    )
    assert result.stopped
    raw, scores = raw_and_scores(result.model, base[:32])
    mean = raw.sum() / 32  # by hand: population statistics of the raw head outputs
    std = (((raw - mean) ** 2).sum() / 32).sqrt()
    assert result.model.gain.item() == pytest.approx((1 / std).item(), rel=1e-5)
    assert result.model.bias.item() == pytest.approx((-mean / std).item(), rel=1e-5, abs=1e-6)
    assert scores.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert scores.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-5)
    assert logs == [
        {
            "step": 0.0,
            "normalization_before/gain": pytest.approx((1 / std).item(), rel=1e-6),
            "normalization_before/bias": pytest.approx((-mean / std).item(), rel=1e-6, abs=1e-7),
            "normalization_before/raw_mean": pytest.approx(mean.item(), rel=1e-6, abs=1e-7),
            "normalization_before/raw_std": pytest.approx(std.item(), rel=1e-6),
            "normalization_before/samples": 32.0,
        }
    ]
    assert result.metrics["normalization_before/gain"] == logs[0]["normalization_before/gain"]
    # The 8 samples past normalize_samples were left out: with them the fit would differ.
    all_raw, _ = raw_and_scores(result.model, base)
    assert fit_normalization(all_raw)[0] != pytest.approx(result.model.gain.item(), rel=1e-3)


def test_normalize_before_needs_two_base_samples():
    with pytest.raises(ValueError, match="2 base-policy samples"):
        fit(small_reward_config(), marker_comparisons(8), base_samples=base_policy_samples(1))


def test_best_of_k_loss_ignores_the_bias_but_not_the_gain():
    """Why 2019 only trained the gain: adding a constant to every reward leaves the softmax loss and
    every gradient unchanged."""
    model = RewardModel(build_tiny(seed=0)[0], head_seed=1)
    data = encode_comparisons(marker_comparisons(8), ByteTokenizer(), 8, 16)
    losses, grads = [], []
    for gain, bias in ((1.7, 0.0), (1.7, 7.5), (3.0, 0.0)):
        model.set_normalization(gain, bias)
        model.zero_grad(set_to_none=True)
        loss = best_of_k_loss(comparison_rewards(model, data, torch.device("cpu")), data.best)
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert losses[1] == pytest.approx(losses[0], abs=1e-6)
    assert torch.allclose(grads[1], grads[0], atol=1e-6)
    assert losses[2] != pytest.approx(losses[0], abs=1e-3)


def test_fit_after_normalize_before_keeps_the_trained_gain_for_references_or_none():
    references = [("query one", "abc ###"), ("query two", "de #"), ("query three", "fghij")]
    base = base_policy_samples(16)
    shifted = fit(
        small_reward_config(normalize="references"), marker_comparisons(32), references=references, base_samples=base
    )
    kept = fit(small_reward_config(normalize="none"), marker_comparisons(32), base_samples=base)
    before_gain = kept.metrics["normalization_before/gain"]
    assert before_gain != pytest.approx(1.0, abs=1e-3)
    assert shifted.metrics["normalization_before/gain"] == before_gain  # same seed, same fresh model
    assert shifted.model.gain.item() == pytest.approx(before_gain)
    assert kept.model.gain.item() == pytest.approx(before_gain)
    assert kept.model.bias.item() == pytest.approx(kept.metrics["normalization_before/bias"])
    tok = ByteTokenizer()
    q, qm = pad_left([tok.encode(q) for q, _ in references], 8, tok.pad_token_id)
    r, rm = pad_right([tok.encode(r) for _, r in references], 16, tok.pad_token_id)
    with torch.no_grad():
        assert shifted.model.score(q, qm, r, rm).mean().item() == pytest.approx(0.0, abs=1e-5)


# --- memory: micro-batches with gradient accumulation -----------------------------------------------------------------
# fp32 tolerance: gradients as in helpers.assert_gradients_close, the loss within 1e-6; a whole fit's metrics and
# weights within 1e-4.


def _one_batch_gradients(micro_batch_size, n=16):
    config = small_reward_config(micro_batch_size=micro_batch_size)
    lm, tokenizer = build_tiny(seed=0)
    model = RewardModel(lm, head_seed=1)
    batch = encode_comparisons(marker_comparisons(n, seed=4), tokenizer, config.query_length, config.response_length)
    optimizer = make_optimizer(model.parameters(), 0.0, config.adam_eps, config.adam_style)  # lr 0: grads stay
    rewards, loss = _batch_step(model, batch, optimizer, make_scaler("fp32", torch.device("cpu")), config,
                                torch.device("cpu"))
    return rewards, loss, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("micro_batch_size, n", [(1, 16), (2, 16), (4, 16), (8, 16), (4, 10)])
def test_micro_batches_give_the_whole_batchs_loss_and_gradients(micro_batch_size, n):
    """Each micro-batch's mean loss weighted by its share of rows (a short last batch included): the accumulated
    gradient is the whole batch's."""
    rewards0, loss0, grads0 = _one_batch_gradients(None, n)
    rewards, loss, grads = _one_batch_gradients(micro_batch_size, n)
    torch.testing.assert_close(rewards, rewards0, rtol=0, atol=1e-6)
    assert loss.item() == pytest.approx(loss0.item(), abs=1e-6)
    assert_gradients_close(grads, grads0)


def test_a_fit_is_the_same_with_micro_batches():
    comparisons = marker_comparisons(48, seed=2)
    fits = [fit(small_reward_config(micro_batch_size=micro, normalize_samples=32), comparisons) for micro in (None, 4)]
    assert len(fits[0].history) == len(fits[1].history) > 1
    for m0, m in zip(fits[0].history, fits[1].history, strict=True):
        assert m.keys() == m0.keys()
        for key, value in m0.items():
            assert m[key] == pytest.approx(value, abs=1e-4), key
    weights = fits[1].model.state_dict()
    for name, tensor in fits[0].model.state_dict().items():
        torch.testing.assert_close(weights[name], tensor, rtol=0, atol=1e-4)


@pytest.mark.parametrize("micro_batch_size", [3, 0, -2, 32])
def test_a_micro_batch_size_that_does_not_divide_the_batch_is_refused(micro_batch_size):
    with pytest.raises(ConfigError, match="micro_batch_size"):
        small_reward_config(micro_batch_size=micro_batch_size).validate()
    small_reward_config(micro_batch_size=8).validate()
