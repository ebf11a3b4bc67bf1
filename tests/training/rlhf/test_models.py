import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from training.rlhf.models import PolicyWithValue, RewardModel, build_tiny, load_lm, packable_gpt2
from training.rlhf.tokenizer import ByteTokenizer, load_tokenizer, pad_left, pad_right
from tests.training.rlhf.helpers import score_k_three_ways


def test_tiny_model_is_gpt2_under_two_million_parameters_without_dropout():
    lm, tokenizer = build_tiny()
    assert lm.config.model_type == "gpt2"
    assert sum(p.numel() for p in lm.parameters()) < 2_000_000
    assert lm.config.resid_pdrop == lm.config.embd_pdrop == lm.config.attn_pdrop == 0.0
    assert lm.config.vocab_size == tokenizer.vocab_size == 258


def test_tiny_model_is_deterministic_per_seed():
    a, _ = build_tiny(seed=3)
    b, _ = build_tiny(seed=3)
    c, _ = build_tiny(seed=4)
    wa, wb, wc = (m.transformer.h[0].attn.c_attn.weight for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)


def test_byte_tokenizer_round_trips_text_and_folder(tmp_path):
    tokenizer = ByteTokenizer()
    ids = tokenizer.encode("héllo\n")
    assert ids[:1] == [104] and len(ids) == 7
    assert tokenizer.decode(ids + [tokenizer.eos_token_id, tokenizer.pad_token_id]) == "héllo\n"
    assert tokenizer.decode([65, 256, 66], skip_special_tokens=False) == "A<eos>B"
    tokenizer.save_pretrained(tmp_path)
    assert isinstance(load_tokenizer(tmp_path), ByteTokenizer)


def test_pad_helpers_keep_the_right_end():
    ids, mask = pad_left([[1, 2, 3], [4]], 2, pad_id=9)
    assert ids.tolist() == [[2, 3], [9, 4]] and mask.tolist() == [[1, 1], [0, 1]]
    ids, mask = pad_right([[1, 2, 3], [4]], 2, pad_id=9)
    assert ids.tolist() == [[1, 2], [4, 9]] and mask.tolist() == [[1, 1], [1, 0]]


def test_save_pretrained_folder_loads_through_the_hub_code_path(tmp_path):
    """A saved tiny model loads with AutoModelForCausalLM offline and gives the same logits."""
    lm, tokenizer = build_tiny(seed=1)
    lm.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded, loaded_tokenizer = load_lm(tmp_path)
    direct = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = torch.tensor([tokenizer.encode("hello world")])
    with torch.no_grad():
        expected = lm(ids).logits
        torch.testing.assert_close(loaded(ids).logits, expected)
        torch.testing.assert_close(direct(ids).logits, expected)
    assert isinstance(loaded_tokenizer, ByteTokenizer)


def test_reward_head_init_scale_and_last_real_token():
    lm, _ = build_tiny()
    rm = RewardModel(lm, head_seed=0)
    d = lm.config.n_embd
    assert rm.head.bias.item() == 0.0
    assert rm.head.weight.std().item() == pytest.approx(1 / math.sqrt(d + 1), rel=0.25)
    ids = torch.tensor([[257, 5, 6, 7, 257], [5, 6, 7, 8, 9]])
    mask = torch.tensor([[0, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        rewards = rm(ids, mask)
        alone = rm(torch.tensor([[5, 6, 7]]), torch.ones(1, 3, dtype=torch.long))
    # Pads around the text change nothing: the head reads the last real token.
    torch.testing.assert_close(rewards[0], alone[0], atol=1e-5, rtol=0)


def test_reward_model_normalization_is_saved_with_weights(tmp_path):
    lm, tokenizer = build_tiny()
    rm = RewardModel(lm, head_seed=5)
    rm.set_normalization(2.5, -0.5)
    rm.save_pretrained(tmp_path, tokenizer)
    loaded, _ = RewardModel.from_pretrained(tmp_path)
    ids, mask = torch.tensor([[1, 2, 3]]), torch.ones(1, 3, dtype=torch.long)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, mask), rm(ids, mask))
    assert (loaded.gain.item(), loaded.bias.item()) == (2.5, -0.5)


def test_policy_value_head_starts_at_zero_and_round_trips(tmp_path):
    lm, tokenizer = build_tiny()
    policy = PolicyWithValue(lm)
    ids, mask = torch.tensor([[1, 2, 3, 4, 5]]), torch.ones(1, 5, dtype=torch.long)
    logits, values = policy(ids, mask, response_start=2)
    assert logits.shape == (1, 3, 258) and values.shape == (1, 3)
    assert torch.count_nonzero(values) == 0
    with torch.no_grad():
        torch.testing.assert_close(logits, lm(ids).logits[:, 1:4])
        policy.value_head.bias.fill_(0.3)
    policy.save_pretrained(tmp_path, tokenizer)
    loaded, _ = PolicyWithValue.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded(ids, mask, 2)[1], torch.full((1, 3), 0.3))


def test_separate_value_model_starts_from_reward_model(tmp_path):
    lm, tokenizer = build_tiny()
    rm_lm, _ = build_tiny(seed=9)
    rm = RewardModel(rm_lm, head_seed=1)
    policy = PolicyWithValue.with_value_from_reward_model(lm, rm)
    ids, mask = torch.tensor([[1, 2, 3, 4]]), torch.ones(1, 4, dtype=torch.long)
    with torch.no_grad():
        _, values = policy(ids, mask, response_start=2)
        # Value at the last response position reads the token before it: the reward of ids[:, :3].
        torch.testing.assert_close(values[:, -1], rm(ids[:, :3], mask[:, :3]))
    policy.save_pretrained(tmp_path, tokenizer)
    loaded, _ = PolicyWithValue.from_pretrained(tmp_path)
    assert loaded.value_head is None and loaded.value_model is not None


def test_shared_query_scoring_equals_one_row_per_sample_in_value_and_gradient():
    """score_k runs the query once for K samples; rewards and gradients match the plain path,
    with left-padded queries, right-padded responses and an empty response."""
    lm, _ = build_tiny(seed=2)
    rm = RewardModel(lm, head_seed=3)
    rm.set_normalization(1.5, -0.25)
    queries, query_mask = pad_left([[5, 6, 7, 8], [9, 10]], 5, pad_id=257)
    responses = torch.tensor([[[1, 2, 3], [4, 5, 257]], [[6, 257, 257], [257, 257, 257]]])
    response_mask = (responses != 257).long()
    shared = rm.score_k(queries, query_mask, responses, response_mask)  # (2, 2)
    shared.sum().backward()
    grads = {n: p.grad.clone() for n, p in rm.named_parameters() if p.grad is not None}
    rm.zero_grad()
    plain = rm.score(
        queries.repeat_interleave(2, 0),
        query_mask.repeat_interleave(2, 0),
        responses.view(4, 3),
        response_mask.view(4, 3),
    ).view(2, 2)
    plain.sum().backward()
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=1e-5)
    for name, param in rm.named_parameters():
        if param.grad is not None:
            torch.testing.assert_close(grads[name], param.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_packed_scoring_equals_the_cached_and_plain_paths_in_value_and_gradient():
    """K=3; left-padded queries (one empty) and right-padded responses (some empty) with columns that
    are padding in every row, which the packed path trims; 3 layers, so the pruned last layer is
    checked after a full middle one."""
    lm = build_tiny(seed=4, n_layer=3)[0]
    rm = RewardModel(lm, head_seed=5)
    assert packable_gpt2(rm.lm)
    rm.set_normalization(0.7, 0.3)
    pad = 257
    queries, query_mask = pad_left([[5, 6, 7, 8], [9, 10], [], [11, 12, 13]], 7, pad_id=pad)
    # (An empty query with an empty response has no token to read: no defined reward, not tested.)
    rows = [[[1, 2, 3], [4, 5], [6]], [[7], [], [8, 9]], [[10, 11], [12], [13]], [[], [], []]]
    flat, flat_mask = pad_right([r for comparison in rows for r in comparison], 6, pad_id=pad)
    responses, response_mask = flat.view(4, 3, 6), flat_mask.view(4, 3, 6)
    (packed, packed_grads), (cached, cached_grads), (plain, plain_grads) = score_k_three_ways(
        rm, queries, query_mask, responses, response_mask
    )
    assert torch.isfinite(packed).all()
    torch.testing.assert_close(packed, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=1e-5)
    assert packed_grads.keys() == plain_grads.keys()
    for name in plain_grads:
        torch.testing.assert_close(packed_grads[name], plain_grads[name], atol=1e-5, rtol=1e-4, msg=name)
        torch.testing.assert_close(cached_grads[name], plain_grads[name], atol=1e-5, rtol=1e-4, msg=name)
    # The rewards differ between samples: a path that read the wrong token would not match by chance.
    assert packed.unique().numel() > 6


def test_reward_model_never_computes_lm_logits():
    lm = build_tiny(seed=1)[0]
    rm = RewardModel(lm, head_seed=1)
    calls = []
    rm.lm.get_output_embeddings().register_forward_hook(lambda *args: calls.append(1))
    queries, query_mask = pad_left([[5, 6], [7]], 3, pad_id=257)
    responses, response_mask = pad_right([[1, 2], [3], [4, 5, 6], []], 3, pad_id=257)
    rm.score_k(queries, query_mask, responses.view(2, 2, 3), response_mask.view(2, 2, 3)).sum().backward()
    rm.score(queries, query_mask, responses[:2], response_mask[:2])
    assert calls == []


def test_non_gpt2_shapes_take_the_shared_cache_path():
    lm = build_tiny(seed=1)[0]
    lm.config.reorder_and_upcast_attn = True  # an attention variant the packed path does not copy
    assert not packable_gpt2(lm)
