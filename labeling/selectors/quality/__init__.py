"""Reads behind the researcher dashboards: agreement, labeler quality, shortcut detectors.

Definitions (the math is in `labeling/metrics.py`):
- **Researchers** are users holding `labeling.view_research` (labeling/roles.py; superusers too).
  Their labels on calibration comparisons are the researcher answers.
- **Researchers' answer** to a calibration comparison, for judging a label by user u: the
  majority choice of the researchers' non-skipped labels on it, u's own label left out (so a
  researcher is judged against the other researchers, and that is researcher–researcher
  agreement). A tie for first place, or no researcher label, means no answer: the label is
  excluded from agreement.
- **K-way agreement**: the label chose the same canonical index as the researchers' answer.
  Chance is 1/K.
- **Pairwise agreement**: with s same and d different labels, (K−1)s / ((K−1)s + d) (see
  `metrics.kway_and_pairwise`). Chance is 50% for every K.
- Skipped labels count for the skip rate, never for agreement. Unsure labels count as answers
  (and the unsure rate is reported). A label is flagged when it has at least one sample flag.
- **Labeler–labeler**: non-researcher, non-skipped labels on comparisons with two or more of
  them: percent agreement over rater pairs, Fleiss' κ, Krippendorff's α (nominal).
- **Majority of N vs researchers**: on calibration comparisons with ≥ 2 non-researcher
  answers, their majority (ties: no answer) against the researchers' answer.
- **Labels per hour**: 3600 / mean seconds spent per label (skips included), i.e. the pace while
  labeling, not over the wall-clock day.
- **Population test** (`population.py`): a labeler's labels against the majority of all labels on
  the same comparisons; flagged when they agree with it less than the population's own rate, exact
  Poisson-binomial test at p < ALPHA.

Every function reads with a fixed number of queries whatever the number of labels or labelers
(label columns in one statement, computed on numpy arrays). The texts' figures the length, copy
and too-fast detectors need are kept per comparison at write time (`Comparison.length_top`,
`copy_top`, `text_chars`). Each process keeps a project's label columns between requests, and
every process shares a snapshot of them through the `dashboard` cache (see `_project_columns` for
why and how both stay fresh); `dashboard_snapshots_refresh` (Celery beat) keeps the snapshots of
active projects current; `dashboard_cache_clear` forgets them.
"""
from labeling.selectors.quality.columns import (
    dashboard_cache_clear,
    dashboard_snapshots_refresh,
)
from labeling.selectors.quality.common import (
    ALPHA,
    READING_CHARS_PER_SECOND,
    TOO_FAST_ALLOWED_SHARE,
    Agreement,
    researcher_ids,
)
from labeling.selectors.quality.labelers import (
    DETECTORS,
    SORT_KEYS,
    TESTS,
    LabelDetail,
    LabelerDetail,
    LabelerQuality,
    PopulationDisagreement,
    ShownText,
    labeler_detail,
    labelers_quality,
    labelers_sort,
)
from labeling.selectors.quality.overview import (
    InterRater,
    ProjectQuality,
    project_quality,
)

__all__ = [
    "ALPHA", "DETECTORS", "READING_CHARS_PER_SECOND", "SORT_KEYS", "TESTS", "TOO_FAST_ALLOWED_SHARE", "Agreement",
    "InterRater", "LabelDetail", "LabelerDetail", "LabelerQuality", "PopulationDisagreement", "ProjectQuality",
    "ShownText",
    "dashboard_cache_clear", "dashboard_snapshots_refresh", "labeler_detail", "labelers_quality", "labelers_sort",
    "project_quality", "researcher_ids",
]
