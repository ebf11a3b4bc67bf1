"""Reward fitting: smoke run on synthetic best-of-4 data, normalisation, stop requests, data input."""

import math
import random

import pytest
import torch

from training.rlhf.config import ConfigError, RewardFitConfig
from training.rlhf.data import Comparison
from training.rlhf.reward_model import encode_comparisons, fit, score_policy_samples
from training.rlhf.tokenizer import ByteTokenizer, pad_left, pad_right

MARKER = "#"


def marker_comparisons(n: int, k: int = 4, seed: int = 0, length: int = 16) -> list[Comparison]:
    """The labeled sample is the one holding the most marker bytes (counts are distinct)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        counts = rng.sample(range(7), k)
        samples = []
        for count in counts:
            chars = [rng.choice("abcdefghij ") for _ in range(length - count)] + [MARKER] * count
            rng.shuffle(chars)
            samples.append("".join(chars))
        query = "".join(rng.choice("klmnop") for _ in range(8))
        out.append(Comparison(query=query, samples=samples, best=counts.index(max(counts))))
    return out


def small_config(**overrides) -> RewardFitConfig:
    base = dict(
        model="tiny",
        query_length=8,
        response_length=16,
        batch_size=16,
        lr=1e-3,
        log_every=5,
        normalize_samples=128,
        seed=1,
        device="cpu",
    )
    return RewardFitConfig(**{**base, **overrides})


def test_fit_learns_marker_preference_and_normalises_on_policy_samples():
    """512 best-of-4 comparisons, one epoch: >= 90% validation accuracy; rho samples then score
    mean 0 and population std 1."""
    logs = []
    result = fit(small_config(), marker_comparisons(512), on_log=logs.append)
    assert not result.stopped
    assert result.metrics["valid/accuracy"] >= 0.9
    assert logs[0]["train/loss"] < math.log(4) + 0.2
    assert logs[-1]["train/loss"] < 0.5 * math.log(4)
    assert {"train/loss", "train/accuracy", "valid/accuracy", "normalization/gain", "normalization/bias"} <= set(
        logs[-1]
    )
    assert [m["step"] for m in logs] == [5, 10, 15, 20, 25, 29]
    # Same seed, same rho samples: the stored gain/bias map them to mean 0, std 1.
    data = encode_comparisons(marker_comparisons(512), ByteTokenizer(), 8, 16)
    raw = score_policy_samples(result.model, data.queries, data.query_mask, small_config(), None, torch.device("cpu"))
    normed = result.model.gain * raw.double() + result.model.bias
    assert normed.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert normed.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    assert result.model.gain.item() == pytest.approx(result.metrics["normalization/gain"])


def test_fit_is_deterministic_for_a_seed():
    a = fit(small_config(normalize="none", valid_fraction=0.0), marker_comparisons(64))
    b = fit(small_config(normalize="none", valid_fraction=0.0), marker_comparisons(64))
    assert torch.equal(a.model.head.weight, b.model.head.weight)
    assert a.metrics["train/loss"] == b.metrics["train/loss"]


def test_fit_accepts_token_ids_and_pairwise_comparisons():
    tok = ByteTokenizer()
    pairs = [
        Comparison(query=tok.encode(c.query), samples=[tok.encode(s) for s in c.samples[:2]], best=0)
        for c in marker_comparisons(32)
    ]
    result = fit(small_config(normalize="none"), pairs)
    assert math.isfinite(result.metrics["train/loss"])


def test_reference_normalisation_shifts_references_to_mean_zero():
    references = [("query one", "abc ###"), ("query two", "de #"), ("query three", "fghij")]
    result = fit(small_config(normalize="references"), marker_comparisons(32), references=references)
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

    result = fit(small_config(), marker_comparisons(128), should_stop=should_stop)
    assert result.stopped
    assert result.model.gain.item() == 1.0 and "normalization/gain" not in result.metrics


def test_invalid_config_names_the_field():
    with pytest.raises(ConfigError, match="valid_fraction"):
        small_config(valid_fraction=1.5).validate()
    with pytest.raises(ValueError, match="same number of samples"):
        encode_comparisons([Comparison("q", ["a", "b"], 0), Comparison("q", ["a", "b", "c"], 0)], ByteTokenizer(), 4, 4)
