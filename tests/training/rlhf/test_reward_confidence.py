"""The reward fit with the 2020 9-point confidence (RewardFitConfig.label_smoothing_from_confidence): soft labels
on pairs whose records carry one, Bradley-Terry on the others."""
import dataclasses
import math

import torch

from training.rlhf.data import Comparison, load_comparisons
from training.rlhf.reward_model import comparison_loss, encode_comparisons, fit
from training.rlhf.tokenizer import ByteTokenizer
from tests.training.rlhf.helpers import marker_comparisons, small_reward_config


def _encoded(answers):
    """(best, confidence) per pair."""
    pairs = [Comparison(query="q", samples=["a", "b"], best=best, confidence=c) for best, c in answers]
    return encode_comparisons(pairs, ByteTokenizer(), 4, 4)


def test_comparison_loss_hand_computed():
    # Rows: r=(0, 2) with c=7 (p=3/4: 0.6269280), and r=(1, 0) with no confidence, best 0 (softplus(-1) = 0.3132617).
    batch = _encoded([(1, 7), (0, None)])
    rewards = torch.tensor([[0.0, 2.0], [1.0, 0.0]])
    on = small_reward_config(label_smoothing_from_confidence=True)
    assert math.isclose(comparison_loss(rewards, batch, on).item(), (0.6269280 + 0.3132617) / 2, rel_tol=1e-6)
    # Off: Bradley-Terry on best for both, (softplus(-2) + softplus(-1)) / 2 = (0.1269280 + 0.3132617) / 2.
    off = small_reward_config()
    assert math.isclose(comparison_loss(rewards, batch, off).item(), (0.1269280 + 0.3132617) / 2, rel_tol=1e-6)


def test_encoding_carries_the_confidence_only_when_a_record_has_one():
    batch = _encoded([(0, 2), (1, None), (1, 8)])
    assert batch.confidence.tolist() == [2, 0, 8]
    assert batch.take(torch.tensor([2, 0])).confidence.tolist() == [8, 2]
    assert _encoded([(0, None), (1, None)]).confidence is None


def test_load_comparisons_reads_an_optional_confidence(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"query": "q", "sample0": "a", "sample1": "b", "best": 1, "confidence": 6}\n'
                    '{"query": "q", "sample0": "a", "sample1": "b", "best": 0}\n')
    assert [c.confidence for c in load_comparisons(path)] == [6, None]


def test_fit_with_sure_confidences_is_the_plain_fit_and_unsure_ones_change_it():
    pairs = marker_comparisons(48, k=2)
    sure = [dataclasses.replace(c, confidence=1 + 8 * c.best) for c in pairs]
    unsure = [dataclasses.replace(c, confidence=4 + 2 * c.best) for c in pairs]
    config = small_reward_config(normalize="none", normalize_before=False, valid_fraction=0.0, epochs=1)
    smoothed = dataclasses.replace(config, label_smoothing_from_confidence=True)
    plain = fit(config, pairs).metrics["train/loss"]
    assert math.isclose(fit(smoothed, sure).metrics["train/loss"], plain, rel_tol=1e-5)
    soft = fit(smoothed, unsure).metrics["train/loss"]
    assert math.isfinite(soft) and not math.isclose(soft, plain, rel_tol=1e-3)
    # c = 4 or 6 aims at p = 3/8 or 5/8: the loss cannot go below that target's entropy (0.6616).
    assert soft > 0.66
