"""training.rlhf.evaluate: held-out queries, win rate, KL, reward accuracy, the scorer as a reward."""

import torch

from training.rlhf.evaluate import (
    compare,
    evaluate_policy,
    passage,
    query_prefix,
    reward_accuracy,
    sample_responses,
    score_texts,
    scorer_reward,
    split_queries,
    tldr_query,
)
from training.rlhf.models import load_lm


def test_query_prefix_keeps_whole_words_and_needs_two():
    assert query_prefix("The little  boat\nlaughed with joy", 18) == "The little boat"
    assert query_prefix("Supercalifragilistic", 8) is None
    assert passage("one two three", 100) is None
    assert passage("a b c d e f g h i j", 100) == "a b c d e f g h i j"


def test_held_out_queries_never_share_a_prefix_with_training_ones():
    docs = [f"Unique{i} doc text" for i in range(40)] + [f"Same start here {i}" for i in range(20)]
    train, held = split_queries(docs, lambda d: query_prefix(d, 15), 0.3, seed=1)
    assert "Same start" in train and "Same start" not in held  # its documents fall in both splits
    assert held and not set(train) & set(held)
    assert split_queries(docs, lambda d: query_prefix(d, 15), 0.3, seed=1) == (train, held)


def test_tldr_query_is_a_passage_and_the_2019_cue():
    assert tldr_query("a b c d e f g h i j k", 100) == "a b c d e f g h i j k\nTL;DR:"
    assert tldr_query("too short to summarize", 100) is None


def test_compare_counts_ties_half():
    result = compare(torch.tensor([1.0, 0.0, 0.5, 0.2]), torch.tensor([0.0, 0.0, 0.7, 0.2]))
    assert result == {"win_rate": 0.5, "strict_win_share": 0.25, "tie_share": 0.5}


def test_reward_accuracy_against_the_true_scores():
    true = torch.tensor([[0.0, 1.0, 2.0], [3.0, 3.0, 1.0]])
    assert reward_accuracy(true * 10, true)["pairwise_accuracy"] == 1.0
    flipped = reward_accuracy(-true, true)
    assert flipped["pairwise_accuracy"] == 0.0 and flipped["n_pairs"] == 5  # the tied pair is left out
    assert flipped["true_best_accuracy"] == 0.0  # only the first comparison has a unique best


def test_the_base_against_itself_has_zero_kl_and_the_scorer_reward_is_normalised():
    lm, tokenizer = load_lm("tiny")
    queries = ["hello there", "the cat", "a b"] * 4

    def scorer(text: str, context: str) -> float:
        return float(text.count("a"))

    base = sample_responses(lm, tokenizer, queries, query_length=8, response_length=6, temperature=0.7, seed=3)
    base_scores = score_texts(scorer, base.texts, queries)
    figures, samples = evaluate_policy(lm, lm, tokenizer, queries, base_scores, scorer, query_length=8,
                                       response_length=6, temperature=0.7, seed=3)
    assert samples.texts == base.texts and figures["win_rate"] == 0.5 and figures["tie_share"] == 1.0
    assert abs(figures["kl"]) < 1e-4
    reward = scorer_reward(scorer, tokenizer, base_scores)
    r = reward(base.queries, base.query_mask, base.responses, torch.ones_like(base.responses))
    assert torch.allclose(r, (base_scores - base_scores.mean()) / base_scores.std().clamp(min=1e-6), atol=1e-5)
