"""Population anomaly test: each labeler against the other labelers' answers on the same comparisons.

Definition (`label_population` per label, `population_tests` per labeler, math in
`metrics.population_test_grouped` and, for every labeler at once, `metrics.population_tests`):

- For a comparison c, n_c(j) counts the answered (not skipped) labels on c that chose sample j,
  over every labeler, researchers included, whenever they were given (regardless of time: the
  whole set of answers is what the exchangeability below needs), and M_c = Σ_j n_c(j).
- The population's majority on c is top_c = {j : n_c(j) = max_j n_c(j)} (all samples tied for
  most votes), and the population's own agreement rate on c is π_c = Σ_{j ∈ top_c} n_c(j) / M_c,
  the share of c's labels that are in the majority. A label on c *agrees* when its choice is in top_c.
- A label is *informative* when π_c < 1: c has at least two answers and they neither all agree
  nor all tie (two labels never inform: they agree, or they are a tie of one each).
- H0, "answers like the population": on each comparison the labeler's label is exchangeable with
  the other labels there, so it is any one of the M_c labels with equal chance and agrees with
  probability exactly π_c, independently across comparisons. The number of agreeing labels A is
  then a Poisson-binomial sum over the labeler's informative labels, and p = P(A ≤ observed)
  exactly (one-sided: agreeing less; to about 1e-12 absolute). statistic = (observed − expected) / n, how far their
  agreement rate falls below the population's own rate on the same comparisons. Flagged at
  p < ALPHA (0.01), like the shortcut detectors.

Counting the labeler's own label in n_c is what makes π_c exact under H0; a label outside top_c is
outside the other labelers' majority too, so "disagrees" reads the same either way.

This is the Chatbot Arena idea (Chiang et al. 2024, "Detecting anomalous users": each vote against
the other votes on the same pair, combined over the user's votes) made exact for small crowds: the
per-comparison conformal p-values there, combined by Fisher's method, are so discrete with 3–10
labels a comparison that Fisher's test almost never rejects; counting agreements against their
exact chances does not have that problem. A likelihood ratio of "population share" (a smoothed
leave-one-out share) against 1/K was rejected: with few labels a comparison the leave-one-out share
overstates the majority (it is chosen because it won), so honest labelers on hard items score
below its expectation and get flagged, and its normal approximation flags a lone dissenter among
ten after one label.

Caveats, shown on the pages: a labeler who is honest but noisier than the crowd is "anomalous"
too (the test says "unlike the others", not "cheating"); with L labelers about L × ALPHA honest ones
are flagged by chance on any one view (Bonferroni: p < ALPHA / L for the family); and looking again
after every new label is a sequential use of a fixed-sample test, which adds false alarms.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeling import metrics
from labeling.selectors.quality.columns import _Labels
from labeling.selectors.quality.common import count_matrix


@dataclass(frozen=True)
class LabelPopulation:
    """Per label (aligned with the label columns it came from) its standing in its comparison's population,
    and each comparison's counts of answers per canonical choice."""

    row: np.ndarray  # the label's comparison: a row of `counts`
    informative: np.ndarray  # bool: π < 1 (see the module docstring)
    agrees: np.ndarray  # bool: answered, and the choice is in the comparison's majority
    majority: np.ndarray  # int: labels in the majority on the label's comparison (π's numerator)
    total: np.ndarray  # int: answered labels on the label's comparison (π's denominator)
    counts: np.ndarray  # (comparisons, K) answered labels per canonical choice, every labeler's

    def subset(self, mask: np.ndarray) -> LabelPopulation:
        return LabelPopulation(row=self.row[mask], informative=self.informative[mask], agrees=self.agrees[mask],
                               majority=self.majority[mask], total=self.total[mask], counts=self.counts)

    def others(self, index: int, chosen: int) -> list[int]:
        """The counts per canonical choice on label `index`'s comparison without that label (choice `chosen`)."""
        counts = self.counts[self.row[index]].copy()
        if 0 <= chosen < len(counts):
            counts[chosen] -= 1
        return counts.tolist()


def _dense(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Each value's index among the distinct values, and how many there are: by offset when the values
    span a range not much wider than their number (ids of one project: no sort), else np.unique."""
    if not len(values):
        return np.zeros(0, dtype=np.int64), 0
    low, high = int(values.min()), int(values.max())
    if high - low < 4 * len(values) + 1024:
        return values - low, high - low + 1
    distinct, index = np.unique(values, return_inverse=True)
    return index, len(distinct)


def label_population(cols: _Labels, k: int) -> LabelPopulation:
    """Every label's agreement with its comparison's population majority and the population's own rate
    there, from the project's label columns (no query). Pass all the project's labels: a subset would
    drop the other labelers' answers."""
    answered = ~cols.skipped & (cols.chosen >= 0) & (cols.chosen < k)
    row, n_rows = _dense(cols.comparison)
    counts = count_matrix(row[answered], cols.chosen[answered], n_rows, k)
    total = counts.sum(axis=1)
    best = counts.max(axis=1) if n_rows else np.zeros(0, dtype=np.int64)
    in_top = (counts == best[:, None]) & (counts > 0)
    majority = (counts * in_top).sum(axis=1)
    agrees = np.zeros(len(cols.id), dtype=bool)
    agrees[answered] = in_top[row[answered], cols.chosen[answered]]
    return LabelPopulation(row=row, informative=answered & (majority[row] < total[row]), agrees=agrees,
                           majority=majority[row], total=total[row], counts=counts)


def population_tests(population: LabelPopulation, group: np.ndarray, n_groups: int) -> list[metrics.TestResult]:
    """`metrics.population_tests` for each labeler: `group` maps each label to its labeler's index."""
    informative = population.informative
    majority, total = population.majority[informative], population.total[informative]
    # π = majority / total as an exact pair: a few hundred distinct pairs, found without sorting the labels
    key, n_keys = _dense(majority * (int(total.max(initial=0)) + 1) + total)
    present = np.bincount(key, minlength=n_keys) > 0
    code = (np.cumsum(present) - 1)[key]
    first = np.zeros(int(present.sum()), dtype=np.int64)
    first[code] = np.arange(len(code))  # any label of each pair
    chances = majority[first] / total[first]
    by_chance = count_matrix(group[informative], code, n_groups, len(chances))
    agreeing = np.bincount(group[informative], weights=population.agrees[informative], minlength=n_groups)
    return metrics.population_tests(agreeing.astype(np.int64), by_chance, chances)
