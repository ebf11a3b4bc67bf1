"""Decoding over a static key/value cache (training/rlhf/decoding.py) gives the samples the dynamic cache gives:
the same tokens for the same generator, log-probs and shared-head values within fp32 rounding, with left padding,
row chunks, after the weights are trained in place and after they are replaced. A CUDA graph replays it on GPUs."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tests.training.rlhf.helpers import devices
from training.rlhf.decoding import StaticGPT2Decoder, decoders_for, forget_decoders, resolve_decoding
from training.rlhf.models import PolicyWithValue, build_tiny
from training.rlhf.sampling import generate

PAD = 257


def _queries(rows: int = 6, length: int = 7, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 256, (rows, length), generator=g)
    real = torch.arange(length) >= torch.randint(0, length - 1, (rows, 1), generator=g)  # left padding, >= 2 real
    return torch.where(real, ids, torch.full_like(ids, PAD)), real.long()


def _both(model, queries, mask, length=9, temperature=0.7, seed=3, **kwargs):
    return [
        generate(model, queries, mask, length, temperature, torch.Generator().manual_seed(seed), decoding=mode,
                 **kwargs)
        for mode in ("dynamic", "static")
    ]


def _assert_same(dynamic, static):
    assert torch.equal(dynamic.responses, static.responses)
    torch.testing.assert_close(static.logprobs, dynamic.logprobs, atol=1e-5, rtol=0)
    if dynamic.values is not None:
        torch.testing.assert_close(static.values, dynamic.values, atol=1e-5, rtol=0)


@pytest.mark.parametrize("temperature", [0.7, 1.0, 0.0])
def test_static_cache_samples_what_the_dynamic_cache_samples(temperature):
    policy = PolicyWithValue(build_tiny(seed=0, n_layer=3)[0])
    queries, mask = _queries()
    dynamic, static = _both(policy, queries, mask, temperature=temperature)
    _assert_same(dynamic, static)
    assert static.values is not None and static.responses.shape == (6, 9)


def test_row_chunks_have_their_own_caches_and_change_nothing():
    lm, _ = build_tiny(seed=1)
    queries, mask = _queries(rows=7)
    whole = generate(lm, queries, mask, 8, 1.0, torch.Generator().manual_seed(5), decoding="static")
    for rows in (2, 3, 7):
        dynamic, static = _both(lm, queries, mask, length=8, temperature=1.0, seed=5, forward_batch_size=rows)
        _assert_same(dynamic, static)
        _assert_same(whole, static)


def test_kept_decoders_follow_in_place_training_and_replaced_weights():
    forget_decoders()
    lm, _ = build_tiny(seed=2)
    queries, mask = _queries(rows=4)
    before = _both(lm, queries, mask)
    kept = decoders_for(lm, (4,), 7 + 9, torch.device("cpu"), graphed=False)
    assert decoders_for(lm, (4,), 7 + 9, torch.device("cpu"), graphed=False) is kept  # reused between calls
    optimizer = torch.optim.SGD(lm.parameters(), lr=0.5)
    ids = torch.cat([queries, before[0].responses], 1)
    lm(ids, attention_mask=torch.ones_like(ids), labels=ids).loss.backward()
    optimizer.step()  # the weights change in place: the same decoder must see them
    after = _both(lm, queries, mask)
    _assert_same(*after)
    assert decoders_for(lm, (4,), 7 + 9, torch.device("cpu"), graphed=False) is kept
    assert not torch.equal(after[1].logprobs, before[1].logprobs)
    lm.transformer.h[0].attn.c_attn.weight = torch.nn.Parameter(lm.transformer.h[0].attn.c_attn.weight.detach() * 2)
    replaced = _both(lm, queries, mask)  # a replaced parameter: a new decoder, never the old one's weights
    _assert_same(*replaced)
    assert decoders_for(lm, (4,), 7 + 9, torch.device("cpu"), graphed=False) is not kept


def test_bf16_autocast_stays_close_to_the_dynamic_cache():
    lm, _ = build_tiny(seed=3)
    queries, mask = _queries(rows=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        runs = [generate(lm, queries, mask, 6, 0.0, torch.Generator().manual_seed(0), decoding=mode)
                for mode in ("dynamic", "static")]
    assert torch.equal(runs[0].responses[:, :2], runs[1].responses[:, :2])  # greedy; bf16 rounding may differ later
    torch.testing.assert_close(runs[1].logprobs[:, :2], runs[0].logprobs[:, :2], atol=0.1, rtol=0)


def test_which_decoding_runs():
    gpt2, _ = build_tiny(seed=0)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_decoding("auto", gpt2, cpu) == "static" and resolve_decoding("auto", gpt2, cuda) == "cuda-graph"
    assert resolve_decoding("cuda-graph", gpt2, cpu) == "static"
    assert resolve_decoding("auto", llama, cuda) == "dynamic" and resolve_decoding("static", llama, cpu) == "dynamic"
    assert resolve_decoding("dynamic", gpt2, cuda) == "dynamic"
    gpt2.train()
    gpt2.transformer.drop.p = 0.1  # active dropout: the static path has none, so it must not run
    assert resolve_decoding("auto", gpt2, cpu) == "dynamic"
    with pytest.raises(ValueError, match="decoding must be one of"):
        resolve_decoding("paged", gpt2, cpu)
    queries, mask = _queries(rows=2)
    generate(llama, queries % 64, mask, 3, 1.0, torch.Generator().manual_seed(0))  # auto falls back, no error


def test_prefill_fills_only_the_real_query_columns():
    lm, _ = build_tiny(seed=0)
    queries, mask = _queries(rows=3, length=5)
    decoder = StaticGPT2Decoder(lm, 3, 5 + 4, torch.device("cpu"))
    with torch.no_grad():
        decoder.prefill(queries, mask, (mask.cumsum(-1) - 1).clamp(min=0))
    assert torch.equal(decoder.key_real[:, 0, 0, :5], mask.bool()) and not decoder.key_real[:, 0, 0, 5:].any()


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_graph_decoding_gives_the_static_steps_samples(device, precision):
    """On CUDA the step is captured as a graph and replayed (the second call replays the kept graph); on the CPU
    "cuda-graph" decodes over the static cache eagerly. Either way: the static step's tokens and log-probs."""
    forget_decoders()
    torch.backends.cuda.matmul.allow_tf32 = False
    policy = PolicyWithValue(build_tiny(seed=0, n_layer=3)[0]).to(device)
    queries, mask = (t.to(device) for t in _queries())
    runs = []
    for mode in ("static", "cuda-graph", "cuda-graph"):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            runs.append(generate(policy, queries, mask, 9, 0.7, torch.Generator(device).manual_seed(3),
                                 decoding=mode))
    for graphed in runs[1:]:
        assert torch.equal(graphed.responses, runs[0].responses)
        torch.testing.assert_close(graphed.logprobs, runs[0].logprobs, atol=1e-4, rtol=0)


def test_a_failed_graph_capture_warns_and_decodes_eagerly(monkeypatch):
    import training.rlhf.decoding as decoding

    def broken(decoder):
        raise RuntimeError("operation not permitted when stream is capturing")

    forget_decoders()
    monkeypatch.setattr(decoding, "GraphedStep", broken)
    lm, _ = build_tiny(seed=4)
    queries, mask = _queries(rows=3)
    kept = decoders_for(lm, (3,), 7 + 5, torch.device("cpu"), graphed=True)  # as "cuda-graph" keeps them
    eager = generate(lm, queries, mask, 5, 1.0, torch.Generator().manual_seed(2), decoding="static")
    hidden = []
    with pytest.warns(RuntimeWarning, match="CUDA graph capture failed"):
        with torch.no_grad():
            kept.decoders[0].prefill(queries, mask, (mask.cumsum(-1) - 1).clamp(min=0))
            column = torch.tensor([7])
            kept.decoders[0].open_column(column)
            hidden.append(kept.step(0, eager.responses[:, :1], mask.sum(-1, keepdim=True), column))
    assert kept.graph_error.startswith("RuntimeError") and kept.graphs == [None]
    fresh = StaticGPT2Decoder(lm, 3, 7 + 5, torch.device("cpu"))  # what the eager step gives
    with torch.no_grad():
        fresh.prefill(queries, mask, (mask.cumsum(-1) - 1).clamp(min=0))
        fresh.open_column(column)
        expected = fresh.step(eager.responses[:, :1], mask.sum(-1, keepdim=True), column)
    torch.testing.assert_close(hidden[0], expected, atol=0, rtol=0)
