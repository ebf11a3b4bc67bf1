"""The reward fit with the ranking, Likert and "none acceptable" answers: the records (Comparison.ranks, likert,
none_acceptable), their encoding, the loss comparison_loss builds from them (RewardFitConfig.ranking_loss,
likert_axis / likert_coef, acceptability_coef), and fits on the tiny model."""
import dataclasses
import math

import pytest
import torch

from training.rlhf.config import ConfigError, RewardFitConfig, config_from_dict
from training.rlhf.data import Comparison, load_comparisons
from training.rlhf.losses import (
    acceptability_loss,
    best_of_k_loss,
    likert_ranks,
    plackett_luce_loss,
    ranking_loss,
)
from training.rlhf.reward_model import comparison_loss, comparison_rewards, encode_comparisons, fit
from training.rlhf.tokenizer import ByteTokenizer
from tests.training.rlhf.helpers import MARKER, marker_comparisons, small_reward_config


def _record(**parts):
    parts = {"best": 0, **parts}
    return Comparison(query="q", samples=["a", "b", "c"], **parts)


def _encoded(records, likert_axis=""):
    return encode_comparisons(records, ByteTokenizer(), 4, 4, likert_axis)


def _ranked(comparisons, tie_last=False):
    """The marker comparisons with ranks by marker count (more = better); tie_last ties the two lowest."""
    out = []
    for c in comparisons:
        counts = [s.count(MARKER) for s in c.samples]
        ranks = [1 + sum(other > count for other in counts) for count in counts]
        if tie_last:
            ranks = [min(r, len(ranks) - 1) for r in ranks]
        out.append(dataclasses.replace(c, ranks=ranks))
    return out


# ---------------------------------------------------------------- records


def test_comparison_keeps_valid_answer_parts():
    record = _record(best=1, ranks=[2, 1, 2], likert={"overall": [3, 7, 3]}, none_acceptable=False)
    assert record.ranks == [2, 1, 2] and record.likert == {"overall": [3, 7, 3]} and record.none_acceptable is False


@pytest.mark.parametrize("parts, message", [
    ({"ranks": [1, 2]}, "one integer rank per sample"),
    ({"ranks": [1, 2, True]}, "one integer rank per sample"),
    ({"ranks": [1, 3, 3]}, "skip none"),
    ({"ranks": [0, 1, 2]}, "start at 1"),
    ({"ranks": [1, 1, 1]}, "every sample tied"),
    ({"best": 1, "ranks": [1, 2, 3]}, "best=1 has rank 2"),
    ({"likert": [3, 4, 5]}, "likert="),
    ({"likert": {"overall": [3, 4]}}, "likert\\['overall'\\]"),
    ({"likert": {"overall": [3, 4, 8]}}, "from 1 to 7"),
    ({"likert": {"overall": [3, 4, 0]}}, "from 1 to 7"),
    ({"none_acceptable": "yes"}, "none_acceptable="),
])
def test_comparison_refuses_bad_answer_parts_naming_the_field(parts, message):
    with pytest.raises(ValueError, match=message):
        _record(**parts)


def test_load_comparisons_reads_the_optional_answer_parts(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(
        '{"query": "q", "sample0": "a", "sample1": "b", "sample2": "c", "best": 1, "ranks": [2, 1, 2], '
        '"likert": {"overall": [3, 7, 3]}, "none_acceptable": true}\n'
        '{"query": "q", "sample0": "a", "sample1": "b", "sample2": "c", "best": 0, "ranks": null, '
        '"none_acceptable": null}\n')
    first, second = load_comparisons(path)
    assert (first.ranks, first.likert, first.none_acceptable) == ([2, 1, 2], {"overall": [3, 7, 3]}, True)
    assert (second.ranks, second.likert, second.none_acceptable) == (None, None, None)


def test_load_comparisons_names_the_line_of_a_bad_answer_part(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"query": "q", "sample0": "a", "sample1": "b", "best": 0}\n'
                    '{"query": "q", "sample0": "a", "sample1": "b", "best": 1, "ranks": [1, 2]}\n')
    with pytest.raises(ValueError, match=r"c\.jsonl:2: .*best=1 has rank 2"):
        load_comparisons(path)


# ---------------------------------------------------------------- encoding


def test_encoding_carries_the_parts_only_when_a_record_has_them():
    records = [_record(best=1, ranks=[2, 1, 3], likert={"overall": [2, 6, 1], "coverage": [1, 1, 7]},
                       none_acceptable=True),
               _record(),
               _record(best=2, likert={"coverage": [4, 4, 4]}, none_acceptable=False)]
    batch = _encoded(records, likert_axis="overall")
    assert batch.ranks.tolist() == [[2, 1, 3], [0, 0, 0], [0, 0, 0]]
    assert batch.likert.tolist() == [[2, 6, 1], [0, 0, 0], [0, 0, 0]]
    assert batch.none_acceptable.tolist() == [1, -1, 0]
    assert _encoded(records, likert_axis="coverage").likert.tolist() == [[1, 1, 7], [0, 0, 0], [4, 4, 4]]
    taken = batch.take(torch.tensor([2, 0]))
    assert taken.ranks.tolist() == [[0, 0, 0], [2, 1, 3]] and taken.none_acceptable.tolist() == [0, 1]
    assert taken.likert.tolist() == [[0, 0, 0], [2, 6, 1]]
    plain = _encoded([_record(), _record(best=2)], likert_axis="overall")
    assert plain.ranks is None and plain.likert is None and plain.none_acceptable is None
    assert _encoded(records).likert is None  # no axis asked for: no ratings carried


# ---------------------------------------------------------------- the loss


def test_comparison_loss_on_ranked_rows_is_the_configured_ranking_loss():
    torch.manual_seed(0)
    ranks = [[2, 1, 2], [1, 2, 3], [3, 1, 2]]
    batch = _encoded([_record(best=r.index(1), ranks=r) for r in ranks])
    rewards = torch.randn(3, 3)
    expected = {"pairs": ranking_loss, "plackett_luce": plackett_luce_loss}
    for name, loss_fn in expected.items():
        got = comparison_loss(rewards, batch, small_reward_config(ranking_loss=name))
        torch.testing.assert_close(got, loss_fn(rewards, torch.tensor(ranks)))
    assert not math.isclose(comparison_loss(rewards, batch, small_reward_config()).item(),
                            best_of_k_loss(rewards, batch.best).item(), rel_tol=1e-3)


def test_comparison_loss_mixes_ranked_and_plain_rows_by_their_share():
    # Row 0 ranked [1, 2, 2] on [1, 0, -1]: (0.3132617 + 0.1269280) / 2 = 0.2200948. Row 1 plain, best 2 on
    # [0, 0, 0]: log 3 = 1.0986123. Each weighs half.
    batch = _encoded([_record(ranks=[1, 2, 2]), _record(best=2)])
    rewards = torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    loss = comparison_loss(rewards, batch, small_reward_config())
    assert math.isclose(loss.item(), (0.2200948 + 1.0986123) / 2, rel_tol=1e-6)


def test_comparison_loss_adds_the_likert_term_on_rated_rows():
    records = [_record(likert={"overall": [6, 2, 2]}), _record(best=2), _record(likert={"overall": [5, 5, 5]})]
    rewards = torch.tensor([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0], [3.0, 1.0, 2.0]])
    base = best_of_k_loss(rewards, torch.tensor([0, 2, 0]))
    config = small_reward_config(likert_axis="overall", likert_coef=0.5)
    loss = comparison_loss(rewards, _encoded(records, "overall"), config)
    # Rated rows 0 and 2; row 2 ties every sample and says nothing: the term is row 0's tie, 0.2200948, one row
    # of the batch's three.
    assert math.isclose(loss.item(), base.item() + 0.5 * 0.2200948 / 3, rel_tol=1e-6)
    expected = base + 0.5 * ranking_loss(rewards[[0, 2]], likert_ranks(torch.tensor([[6, 2, 2], [5, 5, 5]]))) / 3
    torch.testing.assert_close(loss, expected)
    # No coefficient: no term, even with ratings carried.
    torch.testing.assert_close(comparison_loss(rewards, _encoded(records, "overall"), small_reward_config()), base)


def test_comparison_loss_adds_the_acceptability_term_where_the_option_was_offered():
    records = [_record(best=0, none_acceptable=True), _record(best=1, none_acceptable=False), _record(best=2)]
    rewards = torch.tensor([[1.0, 0.0, -1.0], [0.0, -1.0, 0.0], [0.0, 0.0, 2.0]])
    base = best_of_k_loss(rewards, torch.tensor([0, 1, 2]))
    batch = _encoded(records)
    # Row 0: none acceptable at r_best 1: -log(1 - s(1)) = 1.3132617; row 1: acceptable at r_best -1: 1.3132617;
    # two rows of the batch's three.
    loss = comparison_loss(rewards, batch, small_reward_config(acceptability_coef=2.0))
    assert math.isclose(loss.item(), base.item() + 2.0 * 1.3132617 * 2 / 3, rel_tol=1e-6)
    expected = base + 2.0 * acceptability_loss(torch.tensor([1.0, -1.0]), torch.tensor([True, False])) * 2 / 3
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(comparison_loss(rewards, batch, small_reward_config()), base)


def test_micro_batches_of_mixed_rows_give_the_whole_batchs_loss_and_gradient():
    """Every part is a sum of per-row terms over B, so micro-batches holding different shares of ranked, rated and
    asked rows add up to the whole batch (compare losses.ranking_loss's per-part mean, which alone would not)."""
    torch.manual_seed(3)
    records = [_record(best=i % 3, ranks=[1 + (j - i) % 3 for j in range(3)]) if i < 3 else _record(best=i % 3)
               for i in range(8)]
    records = [dataclasses.replace(r, likert={"overall": [1 + (i + j) % 7 for j in range(3)]}) if i % 4 == 0 else r
               for i, r in enumerate(records)]
    records = [dataclasses.replace(r, none_acceptable=bool(i % 2)) if i > 4 else r for i, r in enumerate(records)]
    batch = _encoded(records, "overall")
    config = small_reward_config(ranking_loss="plackett_luce", likert_axis="overall", likert_coef=0.7,
                                 acceptability_coef=1.3)
    rewards = torch.randn(8, 3, requires_grad=True)
    comparison_loss(rewards, batch, config).backward()
    whole, whole_grad = comparison_loss(rewards, batch, config).item(), rewards.grad.clone()
    rewards.grad = None
    total = 0.0
    for rows in (torch.arange(0, 2), torch.arange(2, 7), torch.arange(7, 8)):
        part = comparison_loss(rewards[rows], batch.take(rows), config) * (len(rows) / 8)
        part.backward()
        total += part.item()
    assert math.isclose(total, whole, rel_tol=1e-6)
    torch.testing.assert_close(rewards.grad, whole_grad)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("overrides, field", [
    ({"ranking_loss": "listnet"}, "ranking_loss"),
    ({"likert_coef": -0.1, "likert_axis": "overall"}, "likert_coef"),
    ({"likert_coef": float("nan"), "likert_axis": "overall"}, "likert_coef"),
    ({"likert_coef": 0.5}, "likert_axis"),
    ({"acceptability_coef": -1.0}, "acceptability_coef"),
])
def test_config_refuses_bad_values_naming_the_field(overrides, field):
    with pytest.raises(ConfigError) as error:
        small_reward_config(**overrides).validate()
    assert field in str(error.value) and field in error.value.fields


def test_config_defaults_change_nothing_and_round_trip():
    config = RewardFitConfig()
    assert (config.ranking_loss, config.likert_axis, config.likert_coef, config.acceptability_coef) == (
        "pairs", "", 0.0, 0.0)
    data = dataclasses.asdict(small_reward_config(ranking_loss="plackett_luce", likert_axis="overall",
                                                  likert_coef=0.25, acceptability_coef=1.0))
    assert config_from_dict(RewardFitConfig, data).validate() == config_from_dict(RewardFitConfig, data)
    with pytest.raises(ConfigError, match="likert_coef"):
        config_from_dict(RewardFitConfig, {"likert_coef": "a lot"})


# ---------------------------------------------------------------- fits on the tiny model


FIT = dict(normalize="none", normalize_before=False, valid_fraction=0.0)


def test_a_pairwise_ranking_fit_is_the_plain_fit():
    """K = 2 without ties: both ranking losses are Bradley-Terry, so the fit is the best-of-2 fit."""
    pairs = marker_comparisons(48, k=2)
    plain = fit(small_reward_config(**FIT), pairs).metrics["train/loss"]
    for name in ("pairs", "plackett_luce"):
        ranked = fit(small_reward_config(ranking_loss=name, **FIT), _ranked(pairs)).metrics["train/loss"]
        assert math.isclose(ranked, plain, rel_tol=1e-5)


def test_ranking_fits_of_k4_train_on_the_ranking_and_learn_the_order():
    comparisons = _ranked(marker_comparisons(96, k=4, seed=5), tie_last=True)
    losses = {}
    for name in ("pairs", "plackett_luce"):
        result = fit(small_reward_config(ranking_loss=name, epochs=3, **{**FIT, "valid_fraction": 0.25}), comparisons)
        losses[name] = result.metrics["train/loss"]
        assert math.isfinite(losses[name]) and result.metrics["valid/accuracy"] >= 0.75  # accuracy stays on best
    plain = fit(small_reward_config(epochs=3, **{**FIT, "valid_fraction": 0.25}),
                [dataclasses.replace(c, ranks=None) for c in comparisons]).metrics["train/loss"]
    assert len({round(v, 4) for v in (*losses.values(), plain)}) == 3


def test_a_likert_fit_adds_its_term():
    comparisons = [dataclasses.replace(c, likert={"overall": [1 + s.count(MARKER) for s in c.samples]})
                   for c in marker_comparisons(48, k=3, seed=6)]
    plain = fit(small_reward_config(likert_axis="overall", **FIT), comparisons).metrics["train/loss"]
    rated = fit(small_reward_config(likert_axis="overall", likert_coef=1.0, **FIT), comparisons).metrics["train/loss"]
    assert math.isfinite(rated) and rated > plain  # the same start, one more non-negative term


def test_acceptability_fit_puts_none_acceptable_best_samples_below_zero():
    """Half the comparisons are written in other letters and answered "none acceptable": the term has the model
    score their best samples below 0 and the others' above; without it the sign of the offset is arbitrary."""
    other_letters = str.maketrans("abcdefghij", "qrstuvwxyz")
    comparisons = [
        dataclasses.replace(c, samples=[s.translate(other_letters) for s in c.samples], none_acceptable=True)
        if i % 2 else dataclasses.replace(c, none_acceptable=False)
        for i, c in enumerate(marker_comparisons(64, k=2, seed=3))
    ]

    def best_rewards(coef):
        result = fit(small_reward_config(epochs=8, acceptability_coef=coef, **FIT), comparisons)
        batch = encode_comparisons(comparisons, result.tokenizer, 8, 16)
        with torch.no_grad():
            rewards = comparison_rewards(result.model, batch, torch.device("cpu"))
        return rewards.gather(1, batch.best[:, None]).squeeze(1), batch.none_acceptable == 1

    rewards, none = best_rewards(1.0)
    assert rewards[none].mean() < 0 < rewards[~none].mean()
    assert ((rewards > 0) == ~none).float().mean() >= 0.9
    rewards, none = best_rewards(0.0)
    assert ((rewards > 0) == ~none).float().mean() < 0.75


def test_a_term_no_record_can_feed_is_refused():
    comparisons = marker_comparisons(8, k=2)
    with pytest.raises(ValueError, match="likert_axis='overall': no comparison is rated on it"):
        fit(small_reward_config(likert_axis="overall", likert_coef=1.0, **FIT), comparisons)
    with pytest.raises(ValueError, match="acceptability_coef"):
        fit(small_reward_config(acceptability_coef=1.0, **FIT), comparisons)
