"""The FLOP and byte counts behind bench/ppo_gpu.py's MFU and roofline figures."""

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import GPT2Config, GPT2LMHeadModel

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from ppo_flops import SHAPES, Shape, generation_bytes, ppo_step_flops, trunk_forward_flops  # noqa: E402


def shape_of(name: str) -> Shape:
    d = SHAPES[name]
    return Shape(n_layer=d["n_layer"], n_embd=d["n_embd"], vocab=d["vocab"])


def test_parameter_counts_match_the_published_gpt2_sizes():
    assert shape_of("gpt2").params == 124_439_808
    assert shape_of("gpt2-large").params == 774_030_080


def test_parameter_count_matches_a_built_model():
    shape = Shape(n_layer=2, n_embd=32, vocab=100, n_positions=64)
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=4))
    assert shape.params == sum(p.numel() for p in lm.parameters())


def test_forward_flops_match_torch_flop_counter():
    """torch counts every matrix product; attention it counts over the full S×S square (no causal half)."""
    L, d, V, S, B = 2, 32, 100, 10, 3
    lm = GPT2LMHeadModel(
        GPT2Config(vocab_size=V, n_positions=64, n_embd=d, n_layer=L, n_head=4, attn_implementation="eager")
    )
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        lm(torch.zeros(B, S, dtype=torch.long))
    shape = Shape(n_layer=L, n_embd=d, vocab=V)
    causal_attention = 4 * L * d * S * (S + 1) / 2
    full_attention = 4 * L * d * S * S
    ours = trunk_forward_flops(shape, S) - causal_attention + full_attention + 2 * d * V * S
    assert counter.get_total_flops() == pytest.approx(B * ours)


def test_ppo_step_flops_by_phase():
    shape = Shape(n_layer=1, n_embd=2, vocab=5)  # N = 48
    B, Lq, T, E = 2, 3, 2, 4
    S = Lq + T
    trunk = 2 * 48 * S + 4 * 1 * 2 * S * (S + 1) / 2  # 480 + 120
    head = 2 * 2 * 5 * T  # 40
    separate = ppo_step_flops(shape, B, Lq, T, E, separate_value=True)
    assert separate.generate == B * (2 * 48 * (S - 1) + 4 * 2 * (S - 1) * S / 2 + head)
    assert separate.scoring == B * ((trunk + head) + 2 * (trunk + 4))
    assert separate.update == B * E * 3 * ((trunk + head) + (trunk + 4 * T))
    shared = ppo_step_flops(shape, B, Lq, T, E, separate_value=False)
    assert shared.generate == separate.generate
    assert shared.scoring == B * ((trunk + head) + (trunk + 4))
    assert shared.update == B * E * 3 * (trunk + head + 4 * T)
    assert shared.total < separate.total


def test_generation_bytes_weights_per_pass_and_kv_cache_per_row():
    shape = Shape(n_layer=2, n_embd=4, vocab=10, n_positions=8)
    B, Lq, T = 3, 5, 3
    weights = T * shape.params * 4
    kv = B * 2 * 2 * 4 * ((Lq + 1) + (Lq + 2)) * 2  # decodes 1 and 2, bf16 cache
    assert generation_bytes(shape, B, Lq, T, weight_bytes=4, kv_bytes=2) == weights + kv
