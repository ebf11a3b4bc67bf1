"""Builders shared by the reward-model tests (no Django), and the devices a test runs on."""
import random

import pytest
import torch

from training.rlhf.config import RewardFitConfig
from training.rlhf.data import Comparison
from training.rlhf.models import RewardModel

MARKER = "#"


def devices() -> list:
    """Parameters for a test that checks a device's behaviour: the CPU always, and CUDA (marked ``gpu``) where
    there is one. No test is skipped for want of a GPU: on the CPU it checks what the CPU does instead."""
    return ["cpu"] + ([pytest.param("cuda", marks=pytest.mark.gpu)] if torch.cuda.is_available() else [])


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


def small_reward_config(**overrides) -> RewardFitConfig:
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


def score_k_three_ways(rm: RewardModel, queries, query_mask, responses, response_mask):
    """(rewards, grads) of the packed GPT-2 path, the shared-cache path and one row per sample."""
    B, K, Lr = responses.shape
    out = []
    for run in (
        lambda: rm.score_k(queries, query_mask, responses, response_mask),
        lambda: rm.score_k_cached(queries, query_mask, responses, response_mask),
        lambda: rm.score(
            queries.repeat_interleave(K, 0),
            query_mask.repeat_interleave(K, 0),
            responses.reshape(B * K, Lr),
            response_mask.reshape(B * K, Lr),
        ).view(B, K),
    ):
        rm.zero_grad(set_to_none=True)
        rewards = run()
        (rewards * torch.arange(1.0, B * K + 1).view(B, K)).sum().backward()  # a distinct weight per reward
        out.append((rewards.detach(), {n: p.grad.clone() for n, p in rm.named_parameters() if p.grad is not None}))
    return out


def assert_gradients_close(grads: dict, expected: dict) -> None:
    """fp32 tolerance for the same gradient summed in another order (micro-batches): each tensor within 1e-5 of
    its own largest element plus 2e-6 of the model's largest (tensors whose true gradient is ~0, such as attention
    key biases, hold only rounding noise). Measured on the tiny model: <= 1.2e-6 and <= 4.5e-7 of those."""
    assert set(grads) == set(expected) and expected
    top = max(g.abs().max().item() for g in expected.values())
    for name, grad in expected.items():
        error = (grads[name] - grad).abs().max().item()
        assert error <= 1e-5 * grad.abs().max().item() + 2e-6 * top, (name, error, top)
