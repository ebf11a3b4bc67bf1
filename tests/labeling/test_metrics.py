"""The agreement and detector math (labeling/metrics.py) on small cases worked out by hand."""
import math

import numpy as np
import pytest
from scipy import stats

from labeling import metrics

# Fleiss (1971) as reproduced on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters, 5 categories.
FLEISS_WIKIPEDIA = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
], dtype=float)


def test_wilson_interval_hand_computed():
    """7 of 10: centre (0.7 + 1.92/10)/1.384, half 1.96·sqrt(0.021 + 0.00096)/1.384 → [0.397, 0.892]."""
    low, high = metrics.wilson_interval(7, 10)
    assert low == pytest.approx(0.3968, abs=1e-4)
    assert high == pytest.approx(0.8922, abs=1e-4)


def test_wilson_interval_edges():
    assert metrics.wilson_interval(0, 0) is None
    low, high = metrics.wilson_interval(0, 5)
    assert low == 0.0 and 0 < high < 0.5
    low, high = metrics.wilson_interval(5, 5)
    assert high == 1.0 and 0.5 < low < 1


def test_kway_and_pairwise_agreement():
    """K=4, 3 same and 2 different labels: K-way 3/5; pairwise (3·3)/(3·3 + 2) = 9/11."""
    kway, pairwise = metrics.kway_and_pairwise(3, 2, 4)
    assert kway.value == pytest.approx(0.6)
    assert (pairwise.hits, pairwise.n) == (9, 11)
    assert pairwise.value == pytest.approx(9 / 11)
    assert kway.low < 0.6 < kway.high


def test_pairwise_equals_kway_for_two_samples():
    kway, pairwise = metrics.kway_and_pairwise(4, 3, 2)
    assert kway.value == pairwise.value == pytest.approx(4 / 7)


def test_majority_ties_give_no_answer():
    assert metrics.majority([2, 2, 1]) == 2
    assert metrics.majority([2, 1]) is None
    assert metrics.majority([]) is None


def test_fleiss_kappa_wikipedia_example():
    """P̄ = 0.378, P̄e = 0.213, κ = 0.210 (Fleiss 1971 / Wikipedia worked example)."""
    assert metrics.percent_agreement(FLEISS_WIKIPEDIA) == pytest.approx(0.378, abs=5e-4)
    assert metrics.fleiss_kappa(FLEISS_WIKIPEDIA) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_two_raters_hand_computed():
    """Two raters, 4 items, K=2: answers (0,0) (1,1) (0,1) (0,0): P̄ = 3/4; p = (5/8, 3/8), P̄e = 34/64; κ = (0.75 − 0.53125)/0.46875."""
    counts = metrics.category_counts([[0, 0], [1, 1], [0, 1], [0, 0]], 2)
    assert counts.tolist() == [[2, 0], [0, 2], [1, 1], [2, 0]]
    assert metrics.percent_agreement(counts) == pytest.approx(0.75)
    assert metrics.fleiss_kappa(counts) == pytest.approx((0.75 - 34 / 64) / (1 - 34 / 64))


def test_krippendorff_alpha_nominal_hand_computed():
    """Same 4 items: coincidences o_00 = 6, o_11 = 2, o_01 = o_10 = 1; n = 8, n_0 = 5, n_1 = 3.

    D_o = 2/8, D_e = 2·5·3/(8·7) = 30/56; α = 1 − D_o/D_e = 1 − (1/4)/(15/28) = 1 − 7/15 = 8/15.
    """
    counts = metrics.category_counts([[0, 0], [1, 1], [0, 1], [0, 0]], 2)
    assert metrics.krippendorff_alpha(counts) == pytest.approx(8 / 15)


def test_inter_rater_undefined_cases():
    single = metrics.category_counts([[1], [2]], 4)
    assert metrics.percent_agreement(single) is None
    assert metrics.fleiss_kappa(single) is None
    assert metrics.krippendorff_alpha(single) is None
    unanimous = metrics.category_counts([[1, 1], [1, 1]], 4)
    assert metrics.percent_agreement(unanimous) == 1.0
    assert metrics.fleiss_kappa(unanimous) is None


def test_position_bias_chi_square_hand_computed():
    """Positions chosen 10, 2, 2, 2 times (n 16, expected 4): χ² = (36 + 4 + 4 + 4)/4 = 12, df 3."""
    result = metrics.position_bias_test([0] * 10 + [1, 1, 2, 2, 3, 3], 4)
    assert result.statistic == pytest.approx(12.0)
    assert result.p_value == pytest.approx(0.00738, abs=1e-4)
    assert result.flagged(0.01)
    uniform = metrics.position_bias_test([0, 1, 2, 3] * 5, 4)
    assert uniform.statistic == 0 and not uniform.flagged(0.01)


def test_poisson_binomial_sf_against_hand_and_brute_force():
    """All p = 1/4, n = 4: P(X ≥ 3) = 4·(1/4)³(3/4) + (1/4)⁴ = 13/256. Mixed p checked by enumeration."""
    assert metrics.poisson_binomial_sf(3, [0.25] * 4) == pytest.approx(13 / 256)
    probabilities = [0.25, 0.5, 0.5, 0.25, 0.75]
    brute = 0.0
    for mask in range(2 ** len(probabilities)):
        bits = [(mask >> i) & 1 for i in range(len(probabilities))]
        if sum(bits) >= 3:
            brute += math.prod(p if b else 1 - p for p, b in zip(probabilities, bits, strict=True))
    assert metrics.poisson_binomial_sf(3, probabilities) == pytest.approx(brute)
    assert metrics.poisson_binomial_sf(0, probabilities) == 1.0


def test_preference_test_counts_ties_as_chance():
    """Two labels: a hit with 1 of 4 top (p .25), a hit with 2 of 4 tied (p .5): P(X ≥ 2) = .125; statistic (2 − .75)/2."""
    result = metrics.preference_test([True, True], [0.25, 0.5])
    assert result.p_value == pytest.approx(0.125)
    assert result.statistic == pytest.approx(0.625)
    assert (result.observed, result.expected, result.n) == (2, 0.75, 2)


def test_too_fast_binomial_test():
    """2 of 10 too fast against an allowed 5%: P(X ≥ 2) = 1 − .95¹⁰ − 10·.05·.95⁹ ≈ 0.0861."""
    result = metrics.too_fast_test(2, 10, 0.05)
    assert result.p_value == pytest.approx(1 - 0.95**10 - 10 * 0.05 * 0.95**9)
    assert result.statistic == pytest.approx(0.2)
    assert metrics.too_fast_test(0, 0, 0.05).p_value is None


def test_quantile_linear():
    assert metrics.quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 0.1) == pytest.approx(2.0)
    assert metrics.quantile([4, 1, 3], 0.5) == 3.0
    assert metrics.quantile([], 0.5) is None


@pytest.mark.parametrize(("n", "p"), [(1, 0.25), (7, 0.5), (400, 0.75), (1250, 1 / 3), (5, 0.0), (5, 1.0)])
def test_binomial_pmf_matches_scipy(n, p):
    from scipy import stats

    assert np.allclose(metrics._binom_pmf(n, p), stats.binom.pmf(np.arange(n + 1), n, p), atol=1e-12)


def test_grouped_quantiles_match_numpy_per_group():
    """Groups of 1, 4 and 0 values (the empty one NaN), unsorted input: numpy's quantile on each group."""
    values = np.array([7.0, 1.0, 4.0, 2.0, 9.0])
    group = np.array([1, 0, 1, 1, 1])
    out = metrics.grouped_quantiles(values, group, 3, (0.5, 0.1))
    assert out[0].tolist() == [1.0, 1.0]
    assert out[1] == pytest.approx([np.quantile([7, 4, 2, 9], 0.5), np.quantile([7, 4, 2, 9], 0.1)])
    assert out[1, 0] == 5.5 and out[1, 1] == pytest.approx(2.6)  # by hand: 2 + 0.3·(4 − 2)
    assert np.isnan(out[2]).all()
    rng = np.random.default_rng(3)
    values, group = rng.exponential(size=500), rng.integers(0, 7, size=500)
    out = metrics.grouped_quantiles(values, group, 7, (0.5, 0.1, 0.9))
    for g in range(7):
        assert out[g] == pytest.approx(np.quantile(values[group == g], [0.5, 0.1, 0.9]))


def test_vectorised_tests_match_the_single_ones():
    counts = np.array([[10, 2, 2, 2], [0, 0, 0, 0], [5, 5, 5, 5]])
    many = metrics.position_bias_counts_tests(counts)
    assert many[0] == metrics.position_bias_test([0] * 10 + [1, 1, 2, 2, 3, 3], 4)
    assert many[0].statistic == pytest.approx(12.0)
    assert many[1].p_value is None and many[1].n == 0
    assert many[2].statistic == 0
    fast = metrics.too_fast_tests(np.array([2, 0, 0]), np.array([10, 0, 7]), 0.05)
    assert fast[0].p_value == pytest.approx(1 - 0.95**10 - 10 * 0.05 * 0.95**9)
    assert fast[1].p_value is None
    assert fast[2].p_value == 1.0 and fast[2].statistic == 0


def test_binomial_pmf_beyond_the_log_factorial_table():
    from scipy import stats

    n = 5000  # larger than the table's first size: it grows
    assert np.allclose(metrics._binom_pmf(n, 0.3), stats.binom.pmf(np.arange(n + 1), n, 0.3), atol=1e-12)


def test_grouped_quantiles_of_whole_numbers_take_the_same_values():
    """Durations in ms go through the one-sort path: the same figures as the float path."""
    rng = np.random.default_rng(5)
    values, group = rng.integers(0, 50_000, size=300), rng.integers(0, 4, size=300)
    assert metrics.grouped_quantiles(values, group, 5, (0.5, 0.1)) == pytest.approx(
        metrics.grouped_quantiles(values.astype(float), group, 5, (0.5, 0.1)), nan_ok=True)


# ---------------------------------------------------------------- Bradley–Terry and length control (issue 19)


def _sigmoid(t):
    return 1 / (1 + np.exp(-t))


def test_bradley_terry_hand_computed():
    """A beat B 2 of 3 times, B beat C 2 of 3 (A and C never met): without a prior each pair's MLE is its
    own log-odds, log 2, so with C fixed at 0 the strengths are 2·log 2, log 2, 0."""
    wins = np.array([[0, 2, 0], [1, 0, 2], [0, 1, 0]])
    theta = metrics.bradley_terry(wins, ridge=0, anchor=2)
    assert theta == pytest.approx([2 * math.log(2), math.log(2), 0.0], abs=1e-9)
    assert metrics.bradley_terry(np.array([[0, 3], [1, 0]]), ridge=0, anchor=1)[0] == pytest.approx(math.log(3))


def test_bradley_terry_prior_keeps_a_never_beaten_player_finite_and_the_mean_at_zero():
    """5 wins, 0 losses: the MLE is infinite; with the ridge the fit solves 5·σ(−2t) = ridge·t (t = θ_A = −θ_B)."""
    theta = metrics.bradley_terry(np.array([[0, 5], [0, 0]]))
    t = theta[0]
    assert theta.sum() == pytest.approx(0, abs=1e-12)
    assert 5 * _sigmoid(-2 * t) == pytest.approx(metrics.BT_RIDGE * t, rel=1e-6)
    isolated = metrics.bradley_terry(np.array([[0, 2, 0], [1, 0, 0], [0, 0, 0]]))
    assert isolated[2] == pytest.approx(0, abs=1e-12)  # no games: stays at the mean


def test_bradley_terry_batched_equals_one_by_one():
    rng = np.random.default_rng(3)
    batch = rng.integers(0, 9, size=(5, 4, 4)) * (1 - np.eye(4, dtype=int))
    together = metrics.bradley_terry(batch, anchor=1)
    assert together == pytest.approx(np.stack([metrics.bradley_terry(w, anchor=1) for w in batch]), abs=1e-8)


def test_bootstrap_of_identical_groups_has_no_spread_and_counts_groups():
    """Resampling comparisons that all say the same thing changes nothing: the interval is the point."""
    group, winner, loser = [0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 0, 0], [1, 2, 1, 2, 1, 2]
    fit = metrics.bradley_terry_bootstrap(group, winner, loser, 4, draws=50, anchor=1)
    assert fit.low[:3] == pytest.approx(fit.strength[:3]) and fit.high[:3] == pytest.approx(fit.strength[:3])
    assert list(fit.games) == [6, 3, 3, 0] and list(fit.groups) == [3, 3, 3, 0]
    assert fit.strength[1] == 0.0


def _plackett_luce_labels(rng, strengths, comparisons, k, labels_per_comparison):
    """Best-of-K answers drawn from the softmax choice model (what the reward model's loss assumes), as the
    K−1 pairwise outcomes of each answer, grouped by comparison."""
    group, winner, loser = [], [], []
    for c in range(comparisons):
        shown = rng.choice(len(strengths), size=k, replace=False)
        p = np.exp(strengths[shown]) / np.exp(strengths[shown]).sum()
        for _ in range(labels_per_comparison):
            best = shown[rng.choice(k, p=p)]
            for other in shown[shown != best]:
                group.append(c), winner.append(best), loser.append(other)
    return np.array(group), np.array(winner), np.array(loser)


def test_bradley_terry_bootstrap_intervals_cover_known_strengths_at_about_95_percent():
    """Simulation: 6 policies of known strength, 250 best-of-3 comparisons with 2 labels each from the
    softmax choice model (under which chosen-vs-other outcomes follow Bradley–Terry), 150 data sets:
    the comparison-resampling intervals cover the true strengths (policy 0 = 0) about 95% of the time."""
    rng = np.random.default_rng(19)
    truth = np.array([0.0, 0.4, -0.3, 0.9, -1.0, 0.2])
    covered, estimates = [], []
    for _ in range(150):
        fit = metrics.bradley_terry_bootstrap(*_plackett_luce_labels(rng, truth, 250, 3, 2), 6,
                                              draws=200, seed=int(rng.integers(1 << 30)), anchor=0)
        covered += list((fit.low[1:] <= truth[1:]) & (truth[1:] <= fit.high[1:]))
        estimates.append(fit.strength)
    coverage = np.mean(covered)
    assert 0.91 <= coverage <= 0.985, coverage
    assert np.mean(estimates, axis=0) == pytest.approx(truth, abs=0.05)  # no material bias


def test_length_controlled_equals_raw_rate_when_lengths_are_equal():
    """Log ratio 0 everywhere: σ(α) is the raw win share (up to the tiny prior)."""
    policy = np.array([0] * 10 + [1] * 4)
    won = np.array([1] * 7 + [0] * 3 + [1, 0, 0, 0])
    rates, slope = metrics.length_controlled_win_rates(policy, won, np.zeros(14), np.arange(14), 3)
    assert rates[0].value == pytest.approx(0.7, abs=1e-3) and rates[1].value == pytest.approx(0.25, abs=1e-3)
    assert rates[0].low < 0.7 < rates[0].high
    assert slope == pytest.approx(0, abs=1e-9)
    assert rates[2] is None  # no outcomes
    only_wins, _ = metrics.length_controlled_win_rates([0, 0], [1, 1], [0.1, 0.3], [0, 1], 1)
    assert only_wins == [None]  # α unbounded
    constant, _ = metrics.length_controlled_win_rates([0, 0, 0], [1, 0, 1], [0.5, 0.5, 0.5], [0, 1, 2], 1)
    assert constant == [None]  # every pair twice as long: α and β cannot be told apart


def test_length_controlled_rate_removes_a_length_preference_and_its_interval_covers():
    """Simulation: labelers prefer longer samples (β = 1.5 per unit of log ratio) and the policy writes
    longer samples than the base; at equal length it wins 45% of the time. The raw rate is inflated
    well above 0.45; the length-controlled rate is not, and its interval covers 0.45 about 95% of the time."""
    rng = np.random.default_rng(20)
    alpha = math.log(0.45 / 0.55)
    covered, raw = [], []
    for _ in range(200):
        comparisons = 300
        x = rng.normal(0.4, 0.5, size=comparisons).repeat(2)  # two labels on each comparison
        won = rng.random(2 * comparisons) < _sigmoid(alpha + 1.5 * x)
        [lc], _ = metrics.length_controlled_win_rates(np.zeros(2 * comparisons, int), won, x,
                                                      np.arange(comparisons).repeat(2), 1)
        covered.append(lc.low <= 0.45 <= lc.high)
        raw.append(won.mean())
    assert np.mean(raw) > 0.55
    assert 0.92 <= np.mean(covered) <= 0.98, np.mean(covered)


# ---------------------------------------------------------------- population anomaly test


def test_population_test_hand_computed():
    """Chances 3/4, 2/3, 3/4, one of three labels agreeing: P(A = 0) = ¼·⅓·¼ = 1/48, P(A = 1) = (3 + 2 + 3)/48,
    so p = 9/48 = 3/16; expected 13/6, statistic (1 − 13/6)/3 = −7/18."""
    result = metrics.population_test([False, False, True], [0.75, 2 / 3, 0.75])
    assert result.p_value == pytest.approx(3 / 16)
    assert result.statistic == pytest.approx(-7 / 18)
    assert (result.observed, result.n) == (1, 3) and result.expected == pytest.approx(13 / 6)
    assert metrics.population_test([True, True, True], [0.75, 2 / 3, 0.75]).p_value == 1.0
    assert metrics.population_test([False, False, False], [0.75, 2 / 3, 0.75]).p_value == pytest.approx(1 / 48)
    assert metrics.population_test([], []).p_value is None


def test_poisson_binomial_cdf_against_brute_force_and_scipy():
    """P(X ≤ h) by enumeration for mixed chances; beyond 256 trials (the Fourier path) it matches convolved binomials
    to 1e-6 relative, and to 1e-12 absolute far out in the tail."""
    chances = [0.5, 0.75, 0.8, 2 / 3, 0.75, 0.9]
    groups: dict[float, int] = {}
    for p in chances:
        groups[round(p, 12)] = groups.get(round(p, 12), 0) + 1
    for hits in range(len(chances) + 1):
        brute = 0.0
        for mask in range(2 ** len(chances)):
            bits = [(mask >> i) & 1 for i in range(len(chances))]
            if sum(bits) <= hits:
                brute += math.prod(p if b else 1 - p for p, b in zip(chances, bits, strict=True))
        assert metrics.poisson_binomial_cdf_grouped(hits, groups) == pytest.approx(brute)
    exact = np.convolve(stats.binom.pmf(np.arange(501), 500, 0.9), stats.binom.pmf(np.arange(501), 500, 0.8))
    for hits in (700, 790, 808, 830, 850, 900):  # p from ~1e-34 (read as < 1e-12) through 1.8e-7 and 1.6e-4 to ~1
        assert metrics.poisson_binomial_cdf_grouped(hits, {0.9: 500, 0.8: 500}) == pytest.approx(
            exact[: hits + 1].sum(), rel=1e-6, abs=1e-12)


def test_population_tests_for_many_labelers_match_one_at_a_time():
    """The Fourier path for every labeler at once gives the convolution's p-values, from 3 to 3,000 labels a labeler."""
    rng = np.random.default_rng(18)
    chances = np.array([0.5, 2 / 3, 0.75, 0.8, 0.9])
    counts = np.vstack([rng.multinomial(n, [0.3, 0.2, 0.2, 0.2, 0.1]) for n in (3, 7, 40, 300, 3000)])
    observed = np.rint(counts @ chances - np.array([1, 2, 6, 40, 60])).astype(int)  # below expectation: small p
    results = metrics.population_tests(observed, counts, chances)
    for row, result in zip(range(len(counts)), results, strict=True):
        groups = {float(p): int(m) for p, m in zip(chances, counts[row], strict=True) if m}
        one = metrics.population_test_grouped(int(observed[row]), groups)
        assert result.p_value == pytest.approx(one.p_value, rel=1e-6, abs=1e-12)
        assert (result.n, result.observed) == (one.n, one.observed)
        assert (result.statistic, result.expected) == (pytest.approx(one.statistic), pytest.approx(one.expected))
    assert results[3].p_value < 0.01 and results[0].p_value > 0.01  # the sizes span both sides of the line
    assert [r.p_value for r in metrics.population_tests(np.array([0, 2]), np.array([[0, 0], [1, 1]]),
                                                        np.array([0.5, 0.75]))] == [None, 1.0]
    assert metrics.population_tests(np.zeros(0, int), np.zeros((0, 0), int), np.zeros(0)) == []  # no labelers yet
