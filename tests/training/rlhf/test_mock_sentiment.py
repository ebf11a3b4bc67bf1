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


def test_a_biased_labeler_chooses_on_its_bias_and_the_truth_stays_vader(bench):
    from training.rlhf.tokenizer import ByteTokenizer

    tokenizer = ByteTokenizer()
    texts = ["great wonderful day", "a b c d e f g h i", "plain words here"]
    ids = torch.tensor([list(t.ljust(19).encode()) for t in texts])
    share = bench.char_share(tokenizer, ids, " ")
    assert share.tolist() == pytest.approx([2 / 19, 10 / 19, 5 / 19])  # padding spaces count too
    truth = bench.TrueScore(tokenizer).texts(texts)
    assert int(truth.argmax()) == 0  # VADER prefers the happy text
    biased = truth + 8.0 * share
    assert int(biased.argmax()) == 1  # the biased labeler prefers the spaces


def test_true_score_reads_only_kept_tokens(bench):
    from training.rlhf.tokenizer import ByteTokenizer, pad_right

    tokenizer = ByteTokenizer()
    scorer = bench.TrueScore(tokenizer)
    ids, mask = pad_right([tokenizer.encode("a wonderful day"), tokenizer.encode("a day. awful")], 15, 257)
    mask[1, 6:] = 0  # "a day." only
    scores = scorer.ids(ids, mask)
    assert scores[0] > 0.3 and scores[1] == 0.0


def _pretrained(bench, settings, tmp_path):
    """A base pretrained on the fixture corpus with ``settings`` (folder, model, tokenizer), the true scorer, and
    the train and held-out queries."""
    docs = bench.read_corpus(FIXTURE)
    base_dir = tmp_path / "base"
    bench.pretrain(settings.pretrain_config(base_dir), documents=docs)
    base, tokenizer = bench.load_lm(base_dir)
    return (base_dir, base, tokenizer, bench.TrueScore(tokenizer), *bench.make_queries(docs, settings))


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
    base_dir, base, tokenizer, scorer, train_q, held_q = _pretrained(bench, settings, tmp_path)
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


# --- several seeds, the reward model alone, the beta sweep (issue 19) ------------------------------


def test_t_interval_is_the_student_t_interval(bench):
    values = [0.80, 0.77, 0.83]  # mean 0.80, sample sd 0.03
    got = bench.t_interval(values)
    # t(0.975, 2 df) = 4.3027: three seeds give an interval over four times the standard error.
    assert got["mean"] == pytest.approx(0.80)
    assert got["sd"] == pytest.approx(0.03)
    assert got["half_width"] == pytest.approx(4.302653 * 0.03 / math.sqrt(3), rel=1e-5)
    assert got["low"] == pytest.approx(0.80 - got["half_width"]) and got["high"] == pytest.approx(0.80 + got["half_width"])
    one = bench.t_interval([0.8])
    assert one["mean"] == 0.8 and one["half_width"] is None


def _seed(seed, win, kl):
    return {"seed": seed, "win_rate": win, "kl": kl, "rm_pairwise": 0.66, "gain": 1.1, "tie_share": 0.1,
            "direct_win_rate": 0.75, "wall_s": 600.0, "accepted": win >= 0.8 and kl <= 10}


def test_aggregate_names_the_seeds_that_miss_the_acceptance(bench):
    agg = bench.aggregate_seeds([_seed(0, 0.823, 7.1), _seed(1, 0.771, 6.9), _seed(2, 0.85, 10.5)])
    assert agg["failed_seeds"] == [1, 2] and not agg["accepted_every_seed"]
    assert agg["summary"]["win_rate"]["mean"] == pytest.approx((0.823 + 0.771 + 0.85) / 3)
    assert bench.aggregate_seeds([_seed(0, 0.82, 7.0), _seed(1, 0.81, 9.0)])["accepted_every_seed"]


def test_overoptimisation_shape_finds_the_peak_by_kl(bench):
    rows = [  # given out of KL order on purpose
        {"beta": 0.01, "kl": 40.0, "rm_score": 2.0, "win_rate": 0.70},
        {"beta": 0.3, "kl": 5.0, "rm_score": 0.8, "win_rate": 0.78},
        {"beta": 0.1, "kl": 12.0, "rm_score": 1.4, "win_rate": 0.86},
    ]
    shape = bench.overoptimisation_shape(rows)
    assert shape["betas_by_kl"] == [0.3, 0.1, 0.01]
    assert shape["rm_score_rises"] and shape["peak_beta"] == 0.1 and shape["peak_kl"] == 12.0
    assert shape["win_rate_falls_after_peak"] and shape["drop_after_peak"] == pytest.approx(0.16)
    rows[0]["win_rate"], rows[0]["rm_score"] = 0.9, 1.0  # still rising at the largest KL; RM dips
    shape = bench.overoptimisation_shape(rows)
    assert not shape["win_rate_falls_after_peak"] and not shape["rm_score_rises"]


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["--seeds", "0,x"], "--seeds"),
        (["--seeds", "0,0"], "--seeds"),
        (["--seeds", "-1"], "--seeds"),
        (["--rm-only", "--rm-grid", "6e-4:0"], "--rm-grid"),
        (["--rm-grid", "6e-4:1"], "--rm-grid"),
        (["--beta-sweep", "0.1,-0.01"], "--beta-sweep"),
        (["--seeds", "0,1", "--rm-only"], "--seeds"),
        (["--rm-lr", "0"], "--rm-lr"),
        (["--label-bias", "ab:2"], "--label-bias"),
        (["--label-bias", "space:much"], "--label-bias"),
        (["--kl-horizon", "0"], "--kl-horizon"),
    ],
)
def test_bad_mode_arguments_are_refused_naming_the_flag(bench, tmp_path, capsys, argv, flag):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        bench.main([*argv, "--out", str(out)])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err
    assert not out.exists()  # refused before anything ran


def test_a_finished_seed_is_reused_only_with_the_same_settings(bench, tmp_path):
    import dataclasses
    import json

    settings = bench.Settings(seed=2, threads=2)
    folder = tmp_path / "seed-2"
    folder.mkdir()
    assert bench.finished_seed(settings, folder) is None  # nothing there yet
    stored = {"settings": json.loads(json.dumps(dataclasses.asdict(settings))), "tuned": {"win_rate": 0.8}}
    (folder / "results.json").write_text(json.dumps(stored))
    assert bench.finished_seed(settings, folder)["tuned"]["win_rate"] == 0.8
    assert bench.finished_seed(dataclasses.replace(settings, rm_epochs=2), folder) is None
    assert bench.finished_seed(dataclasses.replace(settings, seed=3), folder) is None


# --- over-optimisation along training (--checkpoint-every) ----------------------------------------


def _points(wins, rms, se=0.02):
    return [{"step": 4 * i, "kl": 10.0 * i, "win_rate": w, "win_rate_se": se, "rm_score": r}
            for i, (w, r) in enumerate(zip(wins, rms))]


def test_checkpoint_shape_calls_a_fall_classic_only_when_it_beats_the_noise_and_the_score_rose(bench):
    shape = bench.checkpoint_shape(_points([0.5, 0.8, 0.9, 0.7, 0.6], [0.0, 3.0, 5.0, 6.0, 7.0]))
    assert shape["peak_step"] == 8 and shape["peak_kl"] == 20.0 and shape["peak_win_rate"] == 0.9
    fall = shape["fall"]  # from the peak (step 8) to the end, while the score went 5 -> 7
    assert (fall["from_step"], fall["to_step"], fall["from_rm_score"], fall["to_rm_score"]) == (8, 16, 5.0, 7.0)
    assert fall["drop"] == pytest.approx(0.3) and fall["drop_se"] == pytest.approx(0.02 * math.sqrt(2))
    assert shape["classic"] and not shape["recovered"]
    # A fall in the middle of the run, then back up: classic, and recovered.
    middle = bench.checkpoint_shape(_points([0.5, 0.9, 0.6, 0.95], [0.0, 2.0, 4.0, 6.0]))
    assert (middle["fall"]["from_step"], middle["fall"]["to_step"]) == (4, 8)
    assert middle["classic"] and middle["recovered"] and middle["peak_win_rate"] == 0.95
    # The same fall while the reward model's score fell too: the policy degraded for both judges.
    both = bench.checkpoint_shape(_points([0.5, 0.8, 0.9, 0.7, 0.6], [0.0, 3.0, 5.0, 2.0, 1.0]))
    assert both["fall"] is None and not both["classic"]
    # A fall within noise (3 standard errors of the difference = 0.085) is not called one.
    small = bench.checkpoint_shape(_points([0.5, 0.8, 0.9, 0.85, 0.84], [0.0, 3.0, 5.0, 6.0, 7.0]))
    assert small["fall"]["drop"] == pytest.approx(0.06) and not small["classic"]
    # Still at its best at the end: nothing fell.
    assert bench.checkpoint_shape(_points([0.5, 0.8, 0.9], [0.0, 3.0, 5.0]))["fall"] is None


@pytest.mark.parametrize("argv", [["--checkpoint-every", "4"], ["--beta-sweep", "0.1", "--checkpoint-every", "0"],
                                  ["--beta-sweep", "0.1", "--checkpoint-queries", "1"]])
def test_checkpoint_flags_are_refused_outside_a_sweep_or_out_of_range(bench, tmp_path, capsys, argv):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        bench.main([*argv, "--out", str(out)])
    assert exc.value.code == 2 and "--checkpoint-" in capsys.readouterr().err
    assert not out.exists()


def test_held_out_checkpoints_do_not_change_the_training_run(bench, tmp_path):
    """The checkpoints evaluate the policy in the middle of training: with their own generator and no
    gradient they must leave the run exactly as it is without them (same metrics, same weights)."""
    settings = bench.Settings(
        corpus=str(FIXTURE), seed=0, n_layer=1, n_embd=32, n_head=2, pretrain_steps=20, pretrain_seconds=0,
        query_bytes=16, query_length=20, response_length=8, ppo_episodes=64, ppo_batch=16, ppo_minibatches=2,
        kl_coef=0.05, kl_target=0, sample_batch=64, checkpoint_every=2,
    )
    base_dir, base, tokenizer, scorer, train_q, held_q = _pretrained(bench, settings, tmp_path)
    e = tokenizer.encode("e")[0]

    def reward(queries, query_mask, responses, response_mask):
        return (responses == e).float().sum(-1)  # likes the letter e

    base_scores = scorer.ids(bench.sample_responses(base, held_q, settings, tokenizer.pad_token_id, 3)[2])
    seen = []

    def checkpoint(step, policy):
        seen.append((step, bench.evaluate_policy(policy, base, held_q, base_scores, settings, scorer,
                                                 tokenizer.pad_token_id, 5)["kl"]))

    plain, plain_history = bench.run_ppo(base_dir, reward, train_q, settings, scorer, "plain")
    checked, checked_history = bench.run_ppo(base_dir, reward, train_q, settings, scorer, "checked", checkpoint)
    assert [s for s, _ in seen] == [2, 4] and seen[-1][1] != 0.0  # every 2 steps and the last; the policy moved
    keys = ("objective/score", "objective/kl", "ppo/loss/policy", "true/score")
    assert [[m[k] for k in keys] for m in checked_history] == [[m[k] for k in keys] for m in plain_history]
    for (name, a), (_, b) in zip(plain.state_dict().items(), checked.state_dict().items()):
        assert torch.equal(a, b), name


def test_the_checkpoint_plot_is_a_png_that_follows_the_points(bench, tmp_path):
    def results(wins):
        return {"settings": {"seed": 0}, "beta_sweep": [
            {"beta": 0.01, "checkpoints": [dict(p, sqrt_kl=math.sqrt(p["kl"])) for p in _points(wins, [0, 1, 2])]},
            {"beta": 0.1},  # a run without checkpoints is left out
        ]}

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Path(bench.plot_checkpoints(results([0.5, 0.9, 0.6]), tmp_path / "a"))
    b = Path(bench.plot_checkpoints(results([0.5, 0.6, 0.9]), tmp_path / "b"))
    assert a.name == "overoptimisation-seed-0.png" and a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert a.read_bytes() != b.read_bytes()
