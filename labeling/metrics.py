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
from scipy import stats
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
