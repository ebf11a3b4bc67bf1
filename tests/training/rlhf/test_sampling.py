import pytest
import torch

from training.rlhf.callbacks import StopRequested
from training.rlhf.models import PolicyWithValue, build_tiny
from training.rlhf.sampling import generate, logprobs_of, sample, sample_valid, truncate, truncation_mask
from tests.training.rlhf.stub_models import forced_tiny

PAD = 99


def test_truncate_keeps_first_token_at_or_after_minimum_index():
    responses = torch.tensor([[5, 1, 5, 2, 5, 3]])
    out, valid = truncate(responses, truncate_token=5, truncate_after=1, pad_id=PAD)
    assert out.tolist() == [[5, 1, 5, PAD, PAD, PAD]]
    assert valid.tolist() == [True]


def test_truncate_ignores_tokens_before_minimum_and_marks_missing_invalid():
    responses = torch.tensor([[5, 1, 2, 3], [1, 2, 3, 5], [5, 5, 1, 1]])
    out, valid = truncate(responses, truncate_token=5, truncate_after=2, pad_id=PAD)
    assert out.tolist() == [[5, 1, 2, 3], [1, 2, 3, 5], [5, 5, 1, 1]]
    assert valid.tolist() == [False, True, False]


def test_truncate_at_index_zero_and_without_token():
    responses = torch.tensor([[7, 1, 7]])
    out, valid = truncate(responses, truncate_token=7, truncate_after=0, pad_id=PAD)
    assert out.tolist() == [[7, PAD, PAD]] and valid.tolist() == [True]
    keep, valid = truncation_mask(responses, None, 0)
    assert keep.all() and valid.all()


def test_generate_is_deterministic_for_a_seed_and_logprobs_match_full_forward():
    lm, _ = build_tiny(seed=0)
    policy = PolicyWithValue(lm)
    queries = torch.tensor([[257, 257, 10, 11], [1, 2, 3, 4]])
    qmask = (queries != 257).long()
    g1 = generate(policy, queries, qmask, 6, 0.7, torch.Generator().manual_seed(1))
    g2 = generate(policy, queries, qmask, 6, 0.7, torch.Generator().manual_seed(1))
    assert torch.equal(g1.responses, g2.responses)
    assert g1.responses.shape == (2, 6) and g1.values.shape == (2, 6)
    ids = torch.cat([queries, g1.responses], 1)
    mask = torch.cat([qmask, torch.ones_like(g1.responses)], 1)
    with torch.no_grad():
        logits, values = policy(ids, mask, response_start=4)
    # KV-cached sampling and one full forward agree, including the temperature scaling.
    torch.testing.assert_close(logprobs_of(logits, g1.responses, 0.7), g1.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(values, g1.values)


def test_temperature_zero_decodes_greedily_whatever_the_seed():
    lm, _ = build_tiny(seed=0)
    queries = torch.tensor([[257, 257, 10, 11], [1, 2, 3, 4]])
    qmask = (queries != 257).long()
    greedy = generate(lm, queries, qmask, 5, 0.0, torch.Generator().manual_seed(1))
    other_seed = generate(lm, queries, qmask, 5, 0.0, torch.Generator().manual_seed(2))
    assert torch.equal(greedy.responses, other_seed.responses)
    ids, mask = queries, qmask
    with torch.no_grad():  # by hand: the argmax of a full forward, one token at a time
        for _ in range(5):
            logits = lm(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], 1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    assert torch.equal(greedy.responses, ids[:, 4:])
    assert torch.isfinite(greedy.logprobs).all() and (greedy.logprobs <= 0).all()


def test_generate_left_padding_does_not_change_samples():
    """A left-padded query samples exactly what the unpadded query samples."""
    lm, _ = build_tiny(seed=0)
    padded = generate(
        lm, torch.tensor([[257, 257, 10, 11]]), torch.tensor([[0, 0, 1, 1]]), 5, 1.0, torch.Generator().manual_seed(3)
    )
    plain = generate(lm, torch.tensor([[10, 11]]), torch.tensor([[1, 1]]), 5, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(padded.responses, plain.responses)
    torch.testing.assert_close(padded.logprobs, plain.logprobs, atol=1e-5, rtol=0)


def test_generate_stops_when_asked():
    lm, _ = build_tiny()
    with pytest.raises(StopRequested):
        generate(lm, torch.tensor([[1, 2]]), torch.ones(1, 2), 4, 1.0, torch.Generator(), should_stop=lambda: True)


def test_sample_gives_k_truncated_samples_per_query_reproducibly():
    lm, tokenizer = build_tiny()
    kwargs = dict(k=3, response_length=12, query_length=8, seed=5, truncate_token=ord("a"), truncate_after=0)
    first = sample(lm, tokenizer, ["hello", [104, 105]], **kwargs)
    again = sample(lm, tokenizer, ["hello", [104, 105]], **kwargs)
    assert [len(group) for group in first] == [3, 3]
    assert [[s.tokens for s in g] for g in first] == [[s.tokens for s in g] for g in again]
    for s in (s for group in first for s in group):
        assert (s.tokens[-1] == ord("a")) == s.valid
        assert len(s.tokens) == 12 or s.valid


def _is_valid(tokens: list[int], token: int, after: int) -> bool:
    """The rule, restated: ``token`` at an index >= ``after`` (the kept tokens end there)."""
    return any(t == token and i >= after for i, t in enumerate(tokens))


def test_sample_valid_redraws_invalid_slots_and_drops_queries_whose_tries_run_out():
    """"." or "a" with equal odds; valid needs the "." at index 3 of 4, so half the draws fail."""
    lm, tokenizer = forced_tiny([ord("."), ord("a")])
    queries = [f"q{i}" for i in range(8)]
    kwargs = dict(response_length=4, query_length=8, truncate_token=ord("."), truncate_after=3)
    result = sample_valid(lm, tokenizer, queries, 2, max_tries=3, seed=0, **kwargs)
    kept = [group for group in result.samples if group]
    assert len(result.samples) == 8 and 0 < len(kept) < 8 and result.dropped == 8 - len(kept)
    assert all(len(group) == 2 and all(s.valid and _is_valid(s.tokens, ord("."), 3) for s in group) for group in kept)
    # The first try is plain ``sample``; later tries redraw only the invalid slots, up to 3 draws each.
    first = sample(lm, tokenizer, queries, 2, seed=0, **kwargs)
    first_invalid = sum(not s.valid for group in first for s in group)
    assert 16 + first_invalid <= result.draws <= 16 * 3 and 0.3 < result.invalid_share < 0.7
    assert result.draws - result.invalid >= 2 * len(kept)  # a dropped query may have had some valid slots
    assert sample_valid(lm, tokenizer, queries, 2, max_tries=3, seed=0, **kwargs) == result  # reproducible


def test_sample_valid_keeps_everything_without_a_rule_and_nothing_when_the_rule_cannot_be_met():
    lm, tokenizer = forced_tiny([ord("a")])
    no_rule = sample_valid(lm, tokenizer, ["q"], 2, max_tries=4, response_length=4, query_length=4)
    assert (no_rule.draws, no_rule.invalid, no_rule.dropped) == (2, 0, 0)
    never = sample_valid(lm, tokenizer, ["q"], 2, max_tries=4, response_length=4, query_length=4,
                         truncate_token=ord("."), truncate_after=0)
    assert never.samples == [[]] and (never.draws, never.invalid, never.invalid_share) == (8, 8, 1.0)
    with pytest.raises(ValueError, match="max_tries"):
        sample_valid(lm, tokenizer, ["q"], 2, max_tries=0, response_length=4, query_length=4)


def test_a_sampled_response_is_valid_exactly_when_truncation_mask_says_so():
    """One rule for labeling and PPO's penalty: ``sample``'s ``valid`` is ``truncation_mask``'s."""
    lm, tokenizer = forced_tiny([ord("."), ord("a")])
    responses = torch.tensor([[ord("."), ord("a"), ord("a")], [ord("a"), ord("."), ord("a")]])
    assert truncation_mask(responses, ord("."), 1)[1].tolist() == [False, True]
    for group in sample(lm, tokenizer, ["q", "r"], 4, response_length=5, query_length=4, truncate_token=ord("."),
                        truncate_after=2):
        for s in group:
            assert s.valid == _is_valid(s.tokens, ord("."), 2)


def test_chunked_logprobs_and_entropy_equal_the_whole_batchs(monkeypatch):
    """No-grad log-probs and entropies run over row chunks (and response_logprobs never builds all rows' logits):
    the same values as one log-softmax over the whole batch."""
    from training.rlhf import sampling
    from training.rlhf.models import response_logits

    lm, _ = build_tiny(seed=0)
    ids = torch.randint(0, 256, (6, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        logits = response_logits(lm, ids, mask, 4)  # (6, 8, V)
        whole = logprobs_of(logits, ids[:, 4:], 0.7), sampling.entropy_of(logits, 0.7)
        monkeypatch.setattr(sampling, "LOGIT_CHUNK_ELEMENTS", logits[0].numel() * 2)  # 2 rows per chunk
        chunked = logprobs_of(logits, ids[:, 4:], 0.7), sampling.entropy_of(logits, 0.7)
        for forward_batch_size in (None, 1, 4):
            torch.testing.assert_close(
                sampling.response_logprobs(lm, ids, mask, 4, 0.7, forward_batch_size), whole[0], rtol=0, atol=1e-6
            )
    for a, b in zip(chunked, whole):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_generate_draws_the_same_samples_whatever_the_forward_batch_size():
    lm, _ = build_tiny(seed=0)
    queries = torch.randint(97, 123, (5, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(queries)
    mask[1, :2] = 0
    runs = [
        generate(PolicyWithValue(lm), queries, mask, 7, 1.0, torch.Generator().manual_seed(3), forward_batch_size=f)
        for f in (None, 2, 1)
    ]
    for run in runs[1:]:
        assert torch.equal(run.responses, runs[0].responses)
        torch.testing.assert_close(run.logprobs, runs[0].logprobs, rtol=0, atol=1e-6)
        torch.testing.assert_close(run.values, runs[0].values, rtol=0, atol=1e-6)
