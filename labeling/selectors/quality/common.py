"""Shared by the dashboard selectors: thresholds, who the researchers are, their answers, agreement tallies."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labeling import metrics
from labeling.roles import researchers

ALPHA = 0.01  # detectors flag at p < ALPHA
READING_CHARS_PER_SECOND = 60.0  # ≈ 3× a fast reader (~20 chars/s): faster than this is not reading
TOO_FAST_ALLOWED_SHARE = 0.05  # a labeler may answer this share too fast (known items, obvious junk)

def researcher_ids() -> set[int]:
    """Ids of the researchers (labeling/roles.py)."""
    return set(researchers().values_list("id", flat=True))


def unique_argmax(counts: np.ndarray) -> np.ndarray:
    """Per row of a (n, K) count matrix: the column holding the single largest count, −1 on a tie for
    first place or an empty row (`metrics.majority` on each row's choices)."""
    if not len(counts):
        return np.zeros(0, dtype=np.int64)
    best = counts.max(axis=1)
    alone = (counts == best[:, None]).sum(axis=1) == 1
    return np.where(alone & (best > 0), counts.argmax(axis=1), -1)


def count_matrix(row: np.ndarray, column: np.ndarray, n_rows: int, n_columns: int) -> np.ndarray:
    """How often each (row[i], column[i]) pair occurs, as an (n_rows, n_columns) int matrix (one bincount)."""
    flat = np.asarray(row, dtype=np.int64) * n_columns + np.asarray(column, dtype=np.int64)
    return np.bincount(flat, minlength=n_rows * n_columns).reshape(n_rows, n_columns)


def researcher_answers(comparison: np.ndarray, chosen: np.ndarray, by_researcher: np.ndarray, k: int,
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The researchers' answer for each of these answered calibration labels, −1 when there is none.

    Returns (own_left_out, everyone): the majority of the researchers' labels on the label's
    comparison with the label itself left out when a researcher gave it (how a researcher is judged
    against the others), and with every researcher's label (for the majority of labelers).
    """
    comparisons, row_of = np.unique(comparison, return_inverse=True)
    counts = count_matrix(row_of[by_researcher], chosen[by_researcher], len(comparisons), k)
    everyone = unique_argmax(counts)[row_of]
    own = counts[row_of]
    own[np.flatnonzero(by_researcher), chosen[by_researcher]] -= 1
    return unique_argmax(own), everyone


def agreement_of(chosen: np.ndarray, reference: np.ndarray, k: int) -> Agreement:
    """Agreement of these labels with their references (those without one, −1, left out)."""
    judged = reference >= 0
    same = int((chosen[judged] == reference[judged]).sum())
    return Agreement.of(same, int(judged.sum()) - same, k)


@dataclass(frozen=True)
class Agreement:
    """K-way and pairwise agreement with the researchers' answer; `same`/`different` label counts."""

    same: int
    different: int
    kway: metrics.Rate
    pairwise: metrics.Rate

    @classmethod
    def of(cls, same: int, different: int, k: int) -> Agreement:
        kway, pairwise = metrics.kway_and_pairwise(same, different, k)
        return cls(same=same, different=different, kway=kway, pairwise=pairwise)
