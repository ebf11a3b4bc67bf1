"""Agreement and labeler-quality statistics: pure math on plain numbers, no database.

The selectors in `labeling/selectors/quality/` read labels and call these. Conventions:
- A rater's answer to a K-way item is the chosen canonical index 0..K-1.
- `wilson_interval` is the Wilson score interval (Wilson 1927), the usual choice for a
  proportion with small n or a rate near 0 or 1; it never leaves [0, 1].
- The shortcut tests are one-sided ("more than chance") and report (statistic, p-value).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import krippendorff
import numpy as np
from scipy import sparse, stats
from scipy.special import gammaln

Z95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class Rate:
    """A proportion `hits / n` with its Wilson 95% interval; `value` is None when n is 0."""

    hits: float
    n: float
    value: float | None
    low: float | None
    high: float | None


def wilson_interval(hits: float, n: float, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for `hits` successes out of `n` trials (Wilson 1927); None when n is 0.

    centre = (p + z²/2n) / (1 + z²/n), half = z·sqrt(p(1−p)/n + z²/4n²) / (1 + z²/n). Unlike the
    normal (Wald) interval it stays inside [0, 1] and is not zero-width at 0 or n successes; at
    exactly 0 or n the bound is 0 or 1 (no rounding error).
    """
    if n <= 0:
        return None
    if not 0 <= hits <= n:
        raise ValueError(f"hits must lie in 0..n, got {hits} of {n}")
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if hits == 0 else max(0.0, centre - half)
    high = 1.0 if hits == n else min(1.0, centre + half)
    return low, high


def rate(hits: float, n: float) -> Rate:
    interval = wilson_interval(hits, n)
    if interval is None:
        return Rate(hits=hits, n=n, value=None, low=None, high=None)
    return Rate(hits=hits, n=n, value=hits / n, low=interval[0], high=interval[1])


def kway_and_pairwise(same: int, different: int, k: int) -> tuple[Rate, Rate]:
    """K-way agreement s/(s+d) and implied pairwise agreement (K−1)s / ((K−1)s + d).

    Pairwise: the reference choice r beats each of the K−1 other samples. A label that also
    chose r agrees on all K−1 pairs; a label that chose j ≠ r disagrees on the pair (r, j) and
    says nothing about the pairs (r, other) since it ranked neither of them. The pairs are
    treated as independent for the interval, which makes it somewhat too narrow.
    """
    pairs_agree = (k - 1) * same
    return rate(same, same + different), rate(pairs_agree, pairs_agree + different)


def majority(choices: Iterable[int]) -> int | None:
    """The most frequent choice, or None on a tie for first place (or no choices)."""
    counts: dict[int, int] = {}
    for c in choices:
        counts[c] = counts.get(c, 0) + 1
    if not counts:
        return None
    best = max(counts.values())
    winners = [c for c, n in counts.items() if n == best]
    return winners[0] if len(winners) == 1 else None


def category_counts(items: Iterable[Sequence[int]], k: int) -> np.ndarray:
    """Items × categories matrix n_ij: how many raters put item i in category j."""
    rows = [np.bincount(np.asarray(item, dtype=int), minlength=k) for item in items]
    return np.array(rows, dtype=float).reshape(len(rows), k)


def percent_agreement(counts: np.ndarray) -> float | None:
    """Mean over items of the share of agreeing rater pairs, P̄ = mean_i Σ_j n_ij(n_ij−1) / n_i(n_i−1).

    Items with fewer than two raters are ignored; None if none is left.
    """
    counts = counts[counts.sum(axis=1) >= 2]
    if len(counts) == 0:
        return None
    n_i = counts.sum(axis=1)
    p_i = (counts * (counts - 1)).sum(axis=1) / (n_i * (n_i - 1))
    return float(p_i.mean())


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' κ (1971) from an items × categories count matrix.

    κ = (P̄ − P̄e) / (1 − P̄e), with P̄ the mean per-item pair agreement and P̄e = Σ_j p_j², p_j the
    share of all ratings in category j. Items may have different numbers of raters (≥ 2; others
    are dropped): P_i then uses each item's own n_i, the usual generalisation. None when
    undefined (no item, or P̄e = 1: every rating in one category).
    """
    counts = counts[counts.sum(axis=1) >= 2]
    if len(counts) == 0:
        return None
    p_bar = percent_agreement(counts)
    p_j = counts.sum(axis=0) / counts.sum()
    p_e = float((p_j**2).sum())
    if math.isclose(p_e, 1.0):
        return None
    return (p_bar - p_e) / (1 - p_e)


def krippendorff_alpha(counts: np.ndarray) -> float | None:
    """Krippendorff's α for nominal data (the `krippendorff` package), from item × category counts.

    Items with fewer than two ratings carry no pairable values and are dropped. None when
    undefined (no pairable item, or a single category used throughout).
    """
    counts = counts[counts.sum(axis=1) >= 2]
    if len(counts) == 0 or np.count_nonzero(counts.sum(axis=0)) < 2:
        return None
    return float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))


@dataclass(frozen=True)
class TestResult:
    """One detector's outcome: its statistic, one-sided p-value, and sizes behind it."""

    statistic: float | None
    p_value: float | None
    n: int
    observed: float = 0.0  # e.g. hits, or too-fast labels
    expected: float = 0.0  # the same under the null hypothesis

    def flagged(self, alpha: float) -> bool:
        return self.p_value is not None and self.p_value < alpha


def position_bias_test(positions: Sequence[int], k: int) -> TestResult:
    """Chi-square goodness of fit of chosen display positions (0..K−1) against uniform.

    Display orders are shuffled uniformly per assignment, so an unbiased labeler's chosen
    position is uniform whatever they prefer. statistic = χ² with K−1 degrees of freedom.
    """
    return position_bias_counts_test(np.bincount(np.asarray(positions, dtype=int), minlength=k))


def position_bias_counts_test(counts: Sequence[int]) -> TestResult:
    """`position_bias_test` from how often each display position was chosen."""
    return position_bias_counts_tests(np.asarray(counts, dtype=float)[None, :])[0]


def position_bias_counts_tests(counts: np.ndarray) -> list[TestResult]:
    """`position_bias_counts_test` for each row of an (n, K) count matrix, with one χ² call for all."""
    observed = np.asarray(counts, dtype=float)
    if not len(observed):
        return []
    n = observed.sum(axis=1)
    expected = n / observed.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = ((observed - expected[:, None]) ** 2).sum(axis=1) / expected
    p = stats.chi2.sf(chi2, observed.shape[1] - 1)  # = scipy.stats.chisquare, without its per-call overhead
    return [TestResult(statistic=float(chi2[i]), p_value=float(p[i]), n=int(n[i]), observed=float(observed[i].max()),
                       expected=float(expected[i])) if n[i] else TestResult(statistic=None, p_value=None, n=0)
            for i in range(len(observed))]


_LOG_FACTORIALS = gammaln(np.arange(1025) + 1.0)  # log k! for k ≤ 1024, grown on demand


def _log_factorials(n: int) -> np.ndarray:
    """log k! for k = 0..n (a table kept between calls: the detectors ask for it per labeler)."""
    global _LOG_FACTORIALS
    table = _LOG_FACTORIALS
    if len(table) <= n:
        table = _LOG_FACTORIALS = gammaln(np.arange(max(n + 1, 2 * len(table))) + 1.0)
    return table[: n + 1]


def _binom_pmf(n: int, p: float) -> np.ndarray:
    """Binomial(n, p) pmf over 0..n from log-factorials (the same values as scipy.stats.binom.pmf, less overhead)."""
    x = np.arange(n + 1)
    if p <= 0 or p >= 1:
        return (x == (n if p >= 1 else 0)).astype(float)
    log_factorial = _log_factorials(n)
    log_pmf = log_factorial[n] - log_factorial - log_factorial[::-1] + x * math.log(p) + (n - x) * math.log1p(-p)
    return np.exp(log_pmf)


def poisson_binomial_sf(hits: int, probabilities: Sequence[float]) -> float:
    """Exact P(X ≥ hits) for X a sum of independent Bernoulli(p_i).

    The p_i are tie shares (t/K), so they take few distinct values: X is a sum of a few
    binomials, and its pmf is their convolution (exact, fast at 100k trials).
    """
    groups: dict[float, int] = {}
    for p in probabilities:
        groups[round(p, 12)] = groups.get(round(p, 12), 0) + 1
    return poisson_binomial_sf_grouped(hits, groups)


def poisson_binomial_sf_grouped(hits: int, groups: dict[float, int]) -> float:
    """`poisson_binomial_sf` with the trials given as {probability: how many trials}."""
    if hits <= 0:
        return 1.0
    pmf = np.array([1.0])
    for p, n in groups.items():
        if n:
            pmf = np.convolve(pmf, _binom_pmf(n, p))
    return float(min(1.0, max(0.0, pmf[hits:].sum())))


def preference_test(hits: Sequence[bool], chance: Sequence[float]) -> TestResult:
    """One-sided exact test that a labeler picks the "top" sample (longest, most copying) more than chance.

    Per label, chance is (samples tied at the maximum)/K and a hit is picking any of them; labels
    where all K tie say nothing and should be left out by the caller. Under H0 the hits are a
    Poisson-binomial sum; p = P(X ≥ observed) exactly (`poisson_binomial_sf`). statistic =
    observed hit rate − expected hit rate.
    """
    groups: dict[float, int] = {}
    for p in chance:
        groups[round(p, 12)] = groups.get(round(p, 12), 0) + 1
    return preference_test_grouped(int(sum(bool(h) for h in hits)), groups)


def preference_test_grouped(observed: int, groups: dict[float, int]) -> TestResult:
    """`preference_test` from the hit count and the labels' chances as {chance: how many labels}."""
    n = int(sum(groups.values()))
    if n == 0:
        return TestResult(statistic=None, p_value=None, n=0)
    expected = float(sum(p * m for p, m in groups.items()))
    p_value = poisson_binomial_sf_grouped(observed, groups)
    return TestResult(statistic=(observed - expected) / n, p_value=p_value, n=n, observed=observed, expected=expected)


def too_fast_test(too_fast: int, n: int, allowed_share: float) -> TestResult:
    """One-sided exact binomial test that the share of too-fast labels exceeds `allowed_share`.

    statistic = observed too-fast share.
    """
    return too_fast_tests(np.array([too_fast]), np.array([n]), allowed_share)[0]


def too_fast_tests(too_fast: np.ndarray, n: np.ndarray, allowed_share: float) -> list[TestResult]:
    """`too_fast_test` for each (too_fast[i], n[i]), with one binomial call for all."""
    too_fast, n = np.asarray(too_fast, dtype=np.int64), np.asarray(n, dtype=np.int64)
    p = np.minimum(1.0, stats.binom.sf(too_fast - 1, n, allowed_share))  # P(X ≥ too_fast), as binomtest("greater")
    return [TestResult(statistic=int(too_fast[i]) / int(n[i]), p_value=float(p[i]), n=int(n[i]),
                       observed=int(too_fast[i]), expected=allowed_share * int(n[i]))
            if n[i] else TestResult(statistic=None, p_value=None, n=0) for i in range(len(n))]


def quantile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolation quantile (numpy's default); None for no values."""
    if len(values) == 0:
        return None
    return float(np.quantile(np.asarray(values, dtype=float), q))


def grouped_quantiles(values: np.ndarray, group: np.ndarray, n_groups: int, qs: Sequence[float]) -> np.ndarray:
    """`quantile` of each group's values (group indices 0..n_groups−1) at each q: an (n_groups, len(qs))
    array, NaN for a group without values. One sort for all groups, then numpy's linear interpolation."""
    values, group = np.asarray(values), np.asarray(group, dtype=np.int64)
    sizes = np.bincount(group, minlength=n_groups)
    if values.dtype.kind in "iu" and (not len(values) or (values.min() >= 0 and values.max() < 1 << 40)):
        # Whole numbers (durations in ms): one sort of group·2⁴⁰ + value, ~10× faster than two sorts.
        ordered = (np.sort(group * (1 << 40) + values) & ((1 << 40) - 1)).astype(float)
    else:
        values = values.astype(float)
        by_value = np.argsort(values)
        ordered = values[by_value[np.argsort(group[by_value], kind="stable")]]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    out = np.full((n_groups, len(qs)), np.nan)
    has = sizes > 0
    for j, q in enumerate(qs):
        position = q * (sizes[has] - 1)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, sizes[has] - 1)
        below, above = ordered[starts[has] + low], ordered[starts[has] + high]
        out[has, j] = below + (above - below) * (position - low)
    return out


# ---------------------------------------------------------------- Bradley–Terry leaderboard, length control

BT_RIDGE = 0.01  # Gaussian prior N(0, 1/0.01) on each log-strength: keeps a never-beaten policy finite


def bradley_terry(wins: np.ndarray, *, ridge: float = BT_RIDGE, anchor: int | None = None,
                  max_iter: int = 100, tol: float = 1e-9) -> np.ndarray:
    """Bradley–Terry log-strengths θ from a wins matrix: P(i beats j) = σ(θ_i − θ_j) (Bradley & Terry 1952).

    `wins[i, j]` is how often i beat j; shape (P, P), or (B, P, P) for B fits at once (the bootstrap).
    Maximises Σ wins·log σ(θ_i − θ_j) − ridge/2·Σ θ² by Newton's method (concave, so the optimum is
    unique; each step is capped at 2 in any coordinate so far-off starts cannot overshoot). The
    penalty's gradient sums to zero with the likelihood's, so the fit has mean 0; `anchor` then
    shifts it so that θ[anchor] = 0. A player with no games stays at the mean.
    """
    w = np.asarray(wins, dtype=float)
    single = w.ndim == 2
    w = w[None] if single else w
    n = w + w.transpose(0, 2, 1)  # (B, P, P) games between i and j
    theta = np.zeros(w.shape[:2])  # (B, P)
    eye = np.eye(w.shape[1])
    for _ in range(max_iter):
        s = 1.0 / (1.0 + np.exp(theta[:, None, :] - theta[:, :, None]))  # σ(θ_i − θ_j), (B, P, P)
        grad = (w - n * s).sum(axis=2) - ridge * theta
        c = n * s * (1.0 - s)
        # + 1/P on every entry: the steps keep the mean at 0 anyway (Σ grad = 0), and with ridge 0 this
        # is what makes the Laplacian invertible (a connected comparison graph then suffices).
        neg_hessian = eye * (c.sum(axis=2) + ridge)[:, :, None] - c + 1.0 / len(eye)
        step = np.linalg.solve(neg_hessian, grad[..., None])[..., 0]
        step *= np.minimum(1.0, 2.0 / np.maximum(np.abs(step).max(axis=1, keepdims=True), 1e-300))
        theta += step
        if np.abs(step).max() < tol:
            break
    if anchor is not None:
        theta = theta - theta[:, anchor:anchor + 1]
    return theta[0] if single else theta


def _small_range(values: np.ndarray) -> bool:
    """Non-negative integers spanning little more than their count: counting beats sorting."""
    return len(values) > 0 and values.min() >= 0 and values.max() < 4 * len(values) + 1024


def _distinct(values: np.ndarray) -> np.ndarray:
    """np.unique of integers (ascending), by counting when their range is small."""
    return np.flatnonzero(np.bincount(values)) if _small_range(values) else np.unique(values)


def _dense_ranks(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Each integer's rank among the distinct values (0..n−1, ascending) and n; by counting when the range is
    small (group ids here are table rows), as np.unique(return_inverse=True) otherwise."""
    if _small_range(values):
        present = np.bincount(values) > 0
        return (np.cumsum(present) - 1)[values], int(present.sum())
    distinct, inverse = np.unique(values, return_inverse=True)
    return inverse.ravel(), len(distinct)


@dataclass(frozen=True)
class BradleyTerryFit:
    """Log-strengths with bootstrap percentile intervals (NaN where not drawn), games and groups per player."""

    strength: np.ndarray  # (P,)
    low: np.ndarray  # (P,)
    high: np.ndarray  # (P,)
    games: np.ndarray  # (P,) pairwise outcomes involving the player
    groups: np.ndarray  # (P,) distinct groups (comparisons) the player's outcomes come from
    n_groups: int  # distinct groups in all


def bradley_terry_bootstrap(group: np.ndarray, winner: np.ndarray, loser: np.ndarray, n_players: int, *,
                            draws: int = 200, seed: int = 0, ridge: float = BT_RIDGE, anchor: int | None = None,
                            level: float = 0.95) -> BradleyTerryFit:
    """`bradley_terry` on pairwise outcomes (winner[i] beat loser[i] in group[i]) with a percentile
    bootstrap that resamples whole groups (comparisons: their outcomes are not independent).

    Groups with identical outcomes are one type (found by two random 64-bit linear hashes of their
    outcome counts); a draw is then a multinomial over types, which is the same as resampling groups,
    at a cost that grows with the number of types, not of labels.
    """
    group, winner, loser = (np.asarray(a, dtype=np.int64) for a in (group, winner, loser))
    p2 = n_players * n_players
    code = winner * n_players + loser
    wins = np.bincount(code, minlength=p2).reshape(n_players, n_players)
    strength = bradley_terry(wins, ridge=ridge, anchor=anchor)
    games = wins.sum(axis=0) + wins.sum(axis=1)
    g, n_groups = _dense_ranks(group)
    player_groups = _distinct(np.concatenate([g * n_players + winner, g * n_players + loser]))
    groups = np.bincount(player_groups % n_players, minlength=n_players)
    low = high = np.full(n_players, np.nan)
    if draws and n_groups > 1:
        # 1. Each group's outcome counts, sorted by group, and the types of groups.
        keys, counts = np.unique(g * p2 + code, return_counts=True)
        key_group, key_code = keys // p2, keys % p2
        coefficients = np.random.default_rng(0x5EED).integers(1, 2**63, size=(2, p2), dtype=np.uint64)
        starts = np.flatnonzero(np.r_[True, key_group[1:] != key_group[:-1]])
        hashes = np.stack([np.add.reduceat(coefficients[h, key_code] * counts.astype(np.uint64), starts)
                           for h in range(2)], axis=1)  # (G, 2); uint64 arithmetic wraps, as a hash should
        _, representative, type_of, multiplicity = np.unique(hashes[:, 0], return_index=True,
                                                             return_inverse=True, return_counts=True)
        if (hashes[representative[type_of.ravel()], 1] != hashes[:, 1]).any():  # the first hash collided
            _, representative, type_of, multiplicity = np.unique(hashes, axis=0, return_index=True,
                                                                 return_inverse=True, return_counts=True)
        # 2. Outcome counts of each type (its first group's), then draws × types resample counts.
        kept = np.isin(key_group, representative)
        per_type = sparse.csr_matrix((counts[kept], (type_of.ravel()[key_group[kept]], key_code[kept])),
                                     shape=(len(representative), p2))
        rng = np.random.default_rng(seed)
        resampled = rng.multinomial(n_groups, multiplicity / multiplicity.sum(), size=draws)
        boot_wins = np.asarray((per_type.T @ resampled.T).T).reshape(draws, n_players, n_players)
        # 3. One batched fit per draw; percentile interval.
        boot = bradley_terry(boot_wins, ridge=ridge, anchor=anchor)
        tail = (1 - level) / 2 * 100
        low, high = np.percentile(boot, [tail, 100 - tail], axis=0)
    return BradleyTerryFit(strength=strength, low=low, high=high, games=games, groups=groups, n_groups=n_groups)


@dataclass(frozen=True)
class LengthControlled:
    """A length-controlled win rate: σ(α) at length ratio 1, with its 95% interval."""

    value: float
    low: float
    high: float


def length_controlled_win_rates(policy: np.ndarray, won: np.ndarray, log_ratio: np.ndarray, group: np.ndarray,
                                n_policies: int, *, ridge: float = 1e-3,
                                z: float = Z95) -> tuple[list[LengthControlled | None], float | None]:
    """Win rates against one opponent at equal length, by the logistic regression of Stiennon et al.
    2020 ("Learning to summarize", length-controlled comparisons): P(won) = σ(α_policy + β·log_ratio),
    one α per policy and one shared β; the rate at length ratio 1 is σ(α_policy).

    One row per pairwise outcome: the policy's sample against the opponent's, `won` when the
    policy's was chosen, `log_ratio` = log(policy length / opponent length), `group` its comparison.
    The interval is σ(α ± z·se) with a sandwich standard error clustered by group (outcomes of one
    comparison are not independent). None for a policy with no outcome, or only wins or only losses
    (α is then unbounded), and for every policy when the log ratio is constant but not 0 (α and β
    cannot be told apart). Returns (rates, β).
    """
    policy, group = np.asarray(policy, dtype=np.int64), np.asarray(group, dtype=np.int64)
    y, x = np.asarray(won, dtype=float), np.asarray(log_ratio, dtype=float)
    n, p = len(y), n_policies
    if n == 0 or (np.ptp(x) == 0 and x[0] != 0):
        return [None] * p, None
    params = np.zeros(p + 1)  # α_0..α_{P−1}, β
    for _ in range(100):
        mu = 1.0 / (1.0 + np.exp(-(params[policy] + params[p] * x)))
        r, v = y - mu, mu * (1.0 - mu)
        grad = np.r_[np.bincount(policy, r, minlength=p), (r * x).sum()] - ridge * params
        info = np.zeros((p + 1, p + 1))
        info[np.arange(p), np.arange(p)] = np.bincount(policy, v, minlength=p)
        info[p, :p] = info[:p, p] = np.bincount(policy, v * x, minlength=p)
        info[p, p] = (v * x * x).sum()
        info += ridge * np.eye(p + 1)
        step = np.linalg.solve(info, grad)
        step *= min(1.0, 2.0 / max(np.abs(step).max(), 1e-300))
        params += step
        if np.abs(step).max() < 1e-10:
            break
    # Cluster-robust (sandwich) covariance: bread⁻¹ · Σ_g s_g s_gᵀ · bread⁻¹ · G/(G−1).
    g, n_groups = _dense_ranks(group)
    scores = sparse.csr_matrix((np.r_[r, r * x], (np.r_[g, g], np.r_[policy, np.full(n, p)])),
                               shape=(n_groups, p + 1))
    meat = np.asarray((scores.T @ scores).todense())
    bread = np.linalg.inv(info)
    cov = bread @ meat @ bread * (n_groups / max(n_groups - 1, 1))
    wins, total = np.bincount(policy, y, minlength=p), np.bincount(policy, minlength=p)
    rates: list[LengthControlled | None] = []
    for i in range(p):
        if total[i] == 0 or wins[i] in (0, total[i]):
            rates.append(None)
            continue
        se = math.sqrt(max(cov[i, i], 0.0))
        alpha = params[i]
        rates.append(LengthControlled(value=_sigmoid(alpha), low=_sigmoid(alpha - z * se),
                                      high=_sigmoid(alpha + z * se)))
    return rates, float(params[p])


def _sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t))


# ---------------------------------------------------------------- population anomaly test

def poisson_binomial_cdf_grouped(hits: int, groups: dict[float, int]) -> float:
    """Exact P(X ≤ hits) for X a sum of independent Bernoulli trials given as {probability: how many trials}.

    Computed as the upper tail of the misses n − X (convolved binomials), so a small p-value is summed
    from small terms, not left over from 1 − (almost 1). O(n²): for many sums at once, `poisson_binomial_cdfs`.
    """
    n = int(sum(groups.values()))
    if hits >= n:
        return 1.0
    if hits < 0:
        return 0.0
    pmf = np.array([1.0])
    for p, m in groups.items():
        if m:
            pmf = np.convolve(pmf, _binom_pmf(int(m), 1.0 - p))
    return float(min(1.0, max(0.0, pmf[n - hits:].sum())))


def poisson_binomial_cdfs(hits: np.ndarray, counts: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """P(X_i ≤ hits[i]) for each row i, X_i a sum of independent Bernoulli trials, counts[i, g] of them
    with probability probabilities[g]: (L,) from (L,), (L, G), (G,).

    The pmf is the discrete Fourier transform of the characteristic function Π_g (1 − p_g + p_g·z)^m
    at N ≥ n + 1 roots of unity z (Hong 2013, "DFT-CF"): one matrix product of the counts with the
    logs, per N. Rows are bucketed by N (powers of two), so the work is linear in the number of
    trials, not quadratic as in convolving. Accurate to about 1e-12 absolute: a smaller
    probability reads as up to 1e-12 (far below any flagging level).
    """
    hits = np.asarray(hits, dtype=np.int64)
    if not len(hits):
        return np.zeros(0)
    counts = np.asarray(counts, dtype=np.int64).reshape(len(hits), -1)
    probabilities = np.asarray(probabilities, dtype=float)
    n = counts.sum(axis=1)
    out = np.where(hits >= n, 1.0, 0.0)
    todo = (hits >= 0) & (hits < n)
    if not todo.any():
        return out
    size = np.maximum(64, 2 ** np.ceil(np.log2(n + 1))).astype(np.int64)
    for grid in np.unique(size[todo]).tolist():
        rows = np.flatnonzero(todo & (size == grid))
        z = np.exp(2j * np.pi * np.arange(grid // 2 + 1) / grid)  # half the circle: the other half is conjugate
        with np.errstate(divide="ignore"):
            log_base = np.log(1.0 - probabilities[:, None] + probabilities[:, None] * z[None, :])  # (G, N)
        # 1 − p + p·z is 0 only at p = ½, z = −1; a large finite log keeps 0 × log finite in the product
        log_base[~np.isfinite(log_base)] = -700.0
        weights = counts[rows].astype(float)
        modulus, angle = weights @ log_base.real, weights @ log_base.imag  # two real products: BLAS, not a loop
        cf = np.exp(modulus) * (np.cos(angle) + 1j * np.sin(angle))  # (rows, N): the characteristic functions
        pmf = np.clip(np.fft.irfft(np.conj(cf), n=grid, axis=1), 0.0, None)
        out[rows] = np.minimum(1.0, np.cumsum(pmf, axis=1)[np.arange(len(rows)), hits[rows]])
    return out


def population_test(agrees: Sequence[bool], chance: Sequence[float]) -> TestResult:
    """One-sided exact test that a labeler agrees with the population's majority less than the population does.

    Per label: `agrees` (their choice is among the answers most labels on that comparison gave) and
    `chance`, the population's own agreement rate there (labels in the majority / labels), which is
    the probability of agreeing for a label exchangeable with the others (H0). Under H0 the number
    of agreeing labels is Poisson-binomial; p = P(X ≤ observed) exactly. statistic = (observed −
    expected) / n, the shortfall of the agreement rate (negative: agrees less than the population).
    See labeling/selectors/quality/population.py for the definition and its caveats.
    """
    groups: dict[float, int] = {}
    for p in chance:
        groups[round(p, 12)] = groups.get(round(p, 12), 0) + 1
    return population_test_grouped(int(sum(bool(a) for a in agrees)), groups)


def population_test_grouped(observed: int, groups: dict[float, int]) -> TestResult:
    """`population_test` from the agreeing-label count and the labels' chances as {chance: how many labels}."""
    n = int(sum(groups.values()))
    if n == 0:
        return TestResult(statistic=None, p_value=None, n=0)
    expected = float(sum(p * m for p, m in groups.items()))
    return TestResult(statistic=(observed - expected) / n, p_value=poisson_binomial_cdf_grouped(observed, groups),
                      n=n, observed=observed, expected=expected)


def population_tests(observed: np.ndarray, counts: np.ndarray, chances: np.ndarray) -> list[TestResult]:
    """`population_test_grouped` for many labelers at once: observed (L,) agreeing labels, counts (L, G) labels
    at each of the chances (G,); p-values by `poisson_binomial_cdfs`."""
    observed = np.asarray(observed, dtype=np.int64)
    if not len(observed):
        return []
    counts = np.asarray(counts, dtype=np.int64).reshape(len(observed), -1)
    chances = np.asarray(chances, dtype=float)
    n = counts.sum(axis=1)
    expected = counts @ chances if counts.size else np.zeros(len(observed))
    p = poisson_binomial_cdfs(observed, counts, chances)
    return [TestResult(statistic=(int(observed[i]) - float(expected[i])) / int(n[i]), p_value=float(p[i]), n=int(n[i]),
                       observed=int(observed[i]), expected=float(expected[i]))
            if n[i] else TestResult(statistic=None, p_value=None, n=0) for i in range(len(observed))]
