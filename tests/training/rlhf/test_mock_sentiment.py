"""The mock-sentiment experiment in miniature (bench/mock_sentiment.py, pure library path): a base
pretrained on the written fixture corpus, a few hundred simulated labels, a few PPO steps. The
reward model must order held-out samples like the hidden scorer better than chance, and PPO on it
must raise the true score."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[3]
FIXTURE = REPO / "tests" / "fixtures" / "tiny_corpus.txt"


def load_bench():
    spec = importlib.util.spec_from_file_location("mock_sentiment", REPO / "bench" / "mock_sentiment.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return load_bench()


def test_query_prefix_keeps_whole_words(bench):
    assert bench.query_prefix("The old dog was happy and kind.", 16) == "The old dog was"
    assert bench.query_prefix("Short  one.\nNext line", 64) == "Short one. Next line"
    assert bench.query_prefix("Supercalifragilistic", 8) is None


def test_bradley_terry_choice_prefers_higher_scores(bench):
    scores = torch.tensor([[0.9, 0.0, -0.5, 0.1]]).repeat(2000, 1)
    picks = bench.bradley_terry_choice(scores, 0.1, torch.Generator().manual_seed(0))
    shares = torch.bincount(picks, minlength=4).float() / 2000
    expected = torch.softmax(scores[0] / 0.1, -1)
    assert torch.allclose(shares, expected, atol=0.03)


def test_true_score_reads_only_kept_tokens(bench):
    from training.rlhf.tokenizer import ByteTokenizer, pad_right

    tokenizer = ByteTokenizer()
    scorer = bench.TrueScore(tokenizer)
    ids, mask = pad_right([tokenizer.encode("a wonderful day"), tokenizer.encode("a day. awful")], 15, 257)
    mask[1, 6:] = 0  # "a day." only
    scores = scorer.ids(ids, mask)
    assert scores[0] > 0.3 and scores[1] == 0.0


@pytest.mark.slow
def test_miniature_round_learns_the_hidden_preference(bench, tmp_path):
    settings = bench.Settings(
        corpus=str(FIXTURE),
        seed=0,
        n_layer=2,
        n_embd=64,
        pretrain_steps=600,
        pretrain_seconds=0,
        pretrain_lr=3e-3,
        query_bytes=24,
        query_length=28,
        response_length=32,
        labels=1500,
        valid_comparisons=1000,
        # The mean readout: over seeds 0-3 its held-out pairwise accuracy is 9-18 standard errors above
        # chance and the tuned policy's score 10-21 above the base's (the last-token readout hovered at 2-3).
        rm_readout="mean",
        rm_lr=1e-3,
        rm_epochs=2,
        rm_batch=16,
        ppo_episodes=768,
        ppo_batch=32,
        ppo_minibatches=2,
        ppo_lr=1e-4,
        kl_coef=0.05,
        kl_target=0,
        sample_batch=128,
    )
    docs = bench.read_corpus(FIXTURE)
    base_dir = tmp_path / "base"
    bench.pretrain(settings.pretrain_config(base_dir), documents=docs)
    base, tokenizer = bench.load_lm(base_dir)
    scorer = bench.TrueScore(tokenizer)
    train_q, held_q = bench.make_queries(docs, settings)
    assert train_q and held_q and not {tuple(q) for q in train_q} & {tuple(q) for q in held_q}

    comparisons, _ = bench.sample_comparisons(base, tokenizer, train_q, settings.labels, settings, scorer, 1)
    valid, valid_scores = bench.sample_comparisons(base, tokenizer, held_q, settings.valid_comparisons, settings, scorer, 2)
    rm = bench.fit_reward(base_dir, comparisons, settings)
    accuracy = bench.reward_model_accuracy(rm, valid, valid_scores, settings, tokenizer)
    # Best-of-4: an uninformative reward model picks the labeled sample with probability exactly
    # 1/4, independently per comparison; demand 2 binomial standard errors above that (the labels are
    # noisy, so this figure is capped well below 1; the pairwise check below is the strong one).
    n, chance = settings.valid_comparisons, 1 / settings.k
    assert accuracy["label_accuracy"] > chance + 2 * math.sqrt(chance * (1 - chance) / n), accuracy
    # And it orders sample pairs like the hidden scorer more often than not (chance 0.5).
    assert accuracy["n_pairs"] >= 1000
    assert accuracy["pairwise_accuracy"] > 0.5 + 4 * 0.5 / math.sqrt(accuracy["n_pairs"]), accuracy

    eval_q = held_q * 60  # a few samples per held-out query
    _, _, base_responses, _ = bench.sample_responses(base, eval_q, settings, tokenizer.pad_token_id, 3)
    base_scores = scorer.ids(base_responses)
    policy, history = bench.run_ppo(base_dir, torch.no_grad()(rm.score), train_q, settings, scorer, "rm")
    result = bench.evaluate_policy(policy, base, eval_q, base_scores, settings, scorer, tokenizer.pad_token_id, 4)
    spread = math.sqrt(2 * base_scores.var().item() / len(eval_q))  # SE of a difference of two means
    assert result["mean_score"] > base_scores.mean().item() + 4 * spread, (result, base_scores.mean().item())
    assert result["win_rate"] > 0.5
    assert len(history) == settings.ppo_episodes // settings.ppo_batch
