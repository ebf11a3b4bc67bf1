"""The project's leaderboard of policies (Bradley–Terry over every clean label, with bootstrap intervals;
raw and length-controlled win rates against the base policy) and sample-to-label latency per round.

How a label becomes pairwise outcomes, per label type (labeling/label_types.py), each credited to the samples'
policies (`Sample.source`): best-of-K, the chosen sample beat each of the other K−1 samples (`BestOfK.pairs`); a
ranking, every strictly ordered pair (`Ranking.pairs`: up to K·(K−1)/2); the 9-point scale, the chosen side beat
the other, and a 5 ("about the same") is a tie. Ties give no outcome (as in the reward fit's losses): the fit has
no tie term, and a tie counted as half a win each would move no strength between two policies anyway.
- Within-policy pairs (the chosen sample and another sample of the same policy) say nothing about
  one policy against another: they are dropped (counted in `Leaderboard.within_policy_pairs`).
- Unsure labels count as what they chose, at full weight, as in the reward fit and the per-round
  win rate (training/selectors/rounds.py): the three figures then describe the same answers.
- Clean labels only: not skipped, and not on comparisons the andon cord withdrew from fitting
  (`andon_excluded_comparison_ids`), as training/selectors/reward_fit.py reads them.
- Scale: strengths are natural log-odds, P(a beats b) = σ(s_a − s_b), fixed by the base policy = 0
  when the base policy has outcomes, else by a mean of 0 (see labeling.metrics.bradley_terry).
"""
from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from operator import itemgetter

import numpy as np
from django.core.cache import caches
from django.db import connections
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q

from labeling.metrics import (
    LengthControlled,
    Rate,
    bradley_terry_bootstrap,
    grouped_quantiles,
    length_controlled_win_rates,
    rate,
)
from labeling.label_types import PairwiseConfidence
from labeling.models import Comparison, ComparisonSample, Label, Project, Sample
from training.models import BASE_POLICY_SOURCE, Round
from training.selectors.andon import andon_excluded_comparison_ids

BOOTSTRAP_DRAWS = 200
logger = logging.getLogger(__name__)


def policy_kind(source: str) -> str:
    """What a sample source names: "base", "reference", "baseline" (another baseline) or "policy"
    (a checkpoint name such as run12-step5, or an imported policy's name)."""
    if source == BASE_POLICY_SOURCE:
        return "base"
    if source == Sample.REFERENCE:
        return "reference"
    if source.startswith("baseline:"):
        return "baseline"
    return "policy"


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int | None  # None: no outcome against another policy, so no strength
    policy: str
    kind: str
    strength: float | None
    low: float | None
    high: float | None
    comparisons: int  # comparisons with at least one outcome between this policy and another
    outcomes: int  # pairwise outcomes involving this policy
    vs_base: Rate | None  # raw win rate against the base policy's samples (pairwise outcomes, Wilson)
    vs_base_lc: LengthControlled | None  # the same at equal length


@dataclass(frozen=True)
class Leaderboard:
    rows: list[LeaderboardRow]
    anchor: str  # "base" (base policy = 0) or "mean" (mean strength 0)
    labels: int  # clean labels read
    comparisons: int  # comparisons with at least one outcome between policies
    outcomes: int  # pairwise outcomes between different policies
    within_policy_pairs: int  # pairs dropped: both samples of one policy
    draws: int
    length_slope: float | None  # β of the length-controlled regression (per unit of log length ratio)


def _rows(queryset) -> list[tuple]:
    """A values_list queryset's rows in one fetch, without Django's per-row converters: at 100k+ rows those
    and the chunked fetches cost as much as the query. Only for integer and text columns (no conversion)."""
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# ---------------------------------------------------------------- PostgreSQL: integer columns as arrays
# On PostgreSQL the large reads come back as a few `array_send(array_agg(column))` values: PostgreSQL's
# binary array format, which numpy reads in place. At 100k labels and 200k samples that costs a fraction
# of fetching as many row tuples (and any other database reads rows).

def _arrays_used(db: str) -> bool:
    return connections[db].vendor == "postgresql"


_INTEGER_TYPES = {21: 2, 23: 4, 20: 8}  # PostgreSQL's type oid of smallint, integer, bigint -> bytes


def _array_parse(data) -> np.ndarray:
    """The int64 values of one `array_send` of a 1-D smallint, integer or bigint array without NULLs: a header
    (dimensions, NULL flag, element type, then length and lower bound per dimension), then each element as
    its byte width and its big-endian value."""
    data = bytes(data)
    ndim, has_null, element = (int.from_bytes(data[i:i + 4], "big") for i in (0, 4, 8))
    width = _INTEGER_TYPES.get(element)
    if width is None:
        raise ValueError("not a smallint, integer or bigint array from array_send")
    if ndim == 0:  # an empty array
        return np.zeros(0, dtype=np.int64)
    n = int.from_bytes(data[12:16], "big")
    if ndim != 1 or has_null or len(data) != 20 + n * (4 + width):
        raise ValueError("not a 1-D integer array without NULLs from array_send")
    # Every element's own length field, then the values as one strided big-endian view of the buffer.
    if (np.ndarray((n,), dtype=">i4", buffer=data, offset=20, strides=(4 + width,)) != width).any():
        raise ValueError("unexpected element width in an array_send value")
    return np.ndarray((n,), dtype=f">i{width}", buffer=data, offset=24, strides=(4 + width,)).astype(np.int64)


def _answers(project) -> np.ndarray:
    """(comparison id, chosen index) of every clean label of the project: an (L, 2) int64 array, one query."""
    queryset = _clean_labels(project).order_by().values_list("comparison_id", "chosen_index")
    if not _arrays_used(queryset.db):
        return np.array(_rows(queryset), dtype=np.int64).reshape(-1, 2)
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        # The ORM's own query (the same filters) as a subquery; its two columns come back as two arrays.
        cursor.execute(f"SELECT array_send(array_agg(a.c)), array_send(array_agg(a.k)) FROM ({sql}) a(c, k)", params)
        comparison, chosen = cursor.fetchone()
    if comparison is None:  # no row: array_agg is NULL
        return np.zeros((0, 2), dtype=np.int64)
    return np.column_stack([_array_parse(comparison), _array_parse(chosen)])


def _answers_with_ranks(project) -> tuple[np.ndarray, np.ndarray]:
    """Ranking and 9-point-scale projects: the clean labels' (comparison id, chosen index), (L, 2), and each label's
    ranks of the samples in canonical order, (L, K) (1 = better; equal ranks tie), one query. A ranking gives its
    own ranks; a scale point gives 1 to the side it prefers and 2 to the other, both 1 for 5 (no preference)."""
    rows = _rows(_clean_labels(project).order_by().values_list("comparison_id", "chosen_index", "ranking",
                                                               "confidence"))
    k = project.k
    answers = np.array([row[:2] for row in rows], dtype=np.int64).reshape(-1, 2)
    ranks = np.full((len(rows), k), 2, dtype=np.int64)
    for i, (_, chosen, ranking, confidence) in enumerate(rows):
        if isinstance(ranking, str):  # a backend that hands JSON back as text
            ranking = json.loads(ranking)
        if ranking and len(ranking) == k:
            ranks[i] = ranking
        elif confidence == PairwiseConfidence.MIDDLE:
            ranks[i] = 1
        elif chosen is not None and chosen < k:
            ranks[i, chosen] = 1
    return answers, ranks


def _sample_columns(project, *, after: int, top: int) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray,
                                                                  np.ndarray]:
    """The samples of the project's comparisons with after < id ≤ top, one query: per sample its comparison
    id, position, policy (an index into the returned names) and length in characters (the comparison's copies
    of `Sample.source` and `Sample.text_length`: no join of the samples themselves)."""
    if _arrays_used(Comparison.objects.db):
        # Grouped by source, so that each policy name crosses once, with the arrays of its samples.
        table = {"cs": ComparisonSample._meta.db_table, "c": Comparison._meta.db_table}
        with connections[Comparison.objects.db].cursor() as cursor:
            cursor.execute(
                f"""SELECT cs.sample_source, array_send(array_agg(cs.comparison_id)),
                           array_send(array_agg(cs.position)), array_send(array_agg(cs.sample_text_length))
                    FROM {table['cs']} cs JOIN {table['c']} c ON c.id = cs.comparison_id
                    WHERE c.project_id = %s AND cs.comparison_id > %s AND cs.comparison_id <= %s
                    GROUP BY cs.sample_source""", (project.id, after, top))
            groups = cursor.fetchall()
        names = [name for name, *_ in groups]
        columns = [[_array_parse(value) for value in arrays] for _, *arrays in groups]
        sizes = [len(comparison) for comparison, _, _ in columns]
        concatenated = [np.concatenate([c[i] for c in columns]) if columns else np.zeros(0, np.int64)
                        for i in range(3)]
        policy = np.repeat(np.arange(len(names), dtype=np.int64), sizes)
        return concatenated[0], concatenated[1], names, policy, concatenated[2]
    rows = _rows(ComparisonSample.objects.filter(comparison__project=project, comparison_id__gt=after,
                                                 comparison_id__lte=top).order_by()
                 .values_list("comparison_id", "position", "sample_source", "sample_text_length"))
    index = {name: i for i, name in enumerate(dict.fromkeys(map(itemgetter(2), rows)))}
    n = len(rows)
    return (np.fromiter(map(itemgetter(0), rows), np.int64, count=n),
            np.fromiter(map(itemgetter(1), rows), np.int64, count=n), list(index),
            np.fromiter((index[row[2]] for row in rows), np.int64, count=n),
            np.fromiter(map(itemgetter(3), rows), np.int64, count=n))


def _dense(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(values, return_inverse=True) of integers; by counting when they span little more than their
    count (comparison ids of one project mostly do), which at 200k values is ten times faster than sorting."""
    if len(values) and values.max() - values.min() < 4 * len(values) + 1024:
        low = values.min()
        present = np.bincount(values - low) > 0
        return np.flatnonzero(present) + low, (np.cumsum(present) - 1)[values - low]
    distinct, inverse = np.unique(values, return_inverse=True)
    return distinct, inverse.reshape(-1)


@dataclass(frozen=True)
class _Entries:
    """The samples of every comparison of a project up to comparison id `top`: one row per comparison
    (`ids`, ascending), one column per position, holding the sample's policy (an index into `names`; −1
    where a comparison has fewer samples) and its length in characters (an empty text counts as 1)."""

    top: int
    count: int  # the project's comparisons with id ≤ top when read
    ids: np.ndarray  # (G,) int64
    policy: np.ndarray  # (G, K) int64
    length: np.ndarray  # (G, K) float
    names: list[str]

    def extended(self, comparison: np.ndarray, position: np.ndarray, names: list[str], policy: np.ndarray,
                 length: np.ndarray, *, top: int, count: int) -> _Entries:
        """These and the samples of newer comparisons (all of ids > top), one entry each: comparison id,
        position, policy (an index into `names`) and length."""
        # New policies are numbered in the order they first appear by (comparison, position), whatever order
        # the rows came in: the bootstrap's draws depend on the numbering, so the same data gives the same board.
        k = max(self.policy.shape[1], int(position.max()) + 1 if len(position) else 0)
        first = np.full(len(names), np.iinfo(np.int64).max)
        np.minimum.at(first, policy, comparison * k + position)
        known = {name: i for i, name in enumerate(self.names)}
        for i in np.argsort(first, kind="stable"):
            known.setdefault(names[i], len(known))
        renumber = np.array([known[name] for name in names], dtype=np.int64)
        ids, row = _dense(comparison)
        table = np.full((len(self.ids) + len(ids), k), -1, dtype=np.int64)
        lengths = np.ones(table.shape)
        table[:len(self.ids), :self.policy.shape[1]] = self.policy
        lengths[:len(self.ids), :self.policy.shape[1]] = self.length
        row = row + len(self.ids)
        table[row, position] = renumber[policy]
        lengths[row, position] = np.maximum(length, 1)
        return _Entries(top=top, count=count, ids=np.r_[self.ids, ids], policy=table, length=lengths,
                        names=list(known))


_NO_ENTRIES = _Entries(top=0, count=0, ids=np.zeros(0, np.int64), policy=np.zeros((0, 0), np.int64),
                       length=np.zeros((0, 0)), names=[])
# A comparison's samples never change once it is written (comparison_create and the imports write them
# in the comparison's transaction), so each process keeps what it read and later reads only newer
# comparisons: at 100k labels, reading 200k sample rows again cost more than everything else together.
_ENTRIES_CACHE: OrderedDict[tuple[str, int], _Entries] = OrderedDict()
_ENTRIES_CACHE_PROJECTS = 8
_LOCK = threading.Lock()

# ---------------------------------------------------------------- a snapshot shared by every process
# Even as arrays and without joining the samples (ComparisonSample keeps their sources and lengths), a
# process's first read of 200k comparison samples costs ~100 ms of PostgreSQL's time (the join with the
# project's comparisons, the grouping by policy): most of a warm board's time again. So every process
# shares what it read through the dashboards' cache (settings.CACHES "dashboard": files under var/, or
# Redis), ~2 MB per 50k comparisons, checked like the kept samples (the same count of the project's
# comparisons up to its top).
SNAPSHOT_CACHE = "dashboard"
_SNAPSHOT_FORMAT = 1  # bump when _Entries or the packing changes
# A process rewrites the snapshot once it holds this many comparisons more than the snapshot (or this share).
SNAPSHOT_REWRITE_COMPARISONS = 1_000
SNAPSHOT_REWRITE_SHARE = 0.05
_SNAPSHOT_COUNT: dict[tuple[str, int], int] = {}  # comparisons in the shared snapshot, as far as this process knows


def _snapshot_key(db: str, project_id: int) -> str:
    settings = connections[db].settings_dict
    return (f"training:leaderboard:v{_SNAPSHOT_FORMAT}:{settings.get('HOST') or ''}:{settings.get('PORT') or ''}:"
            f"{settings['NAME']}:{project_id}")


def _narrow(values: np.ndarray) -> np.ndarray:
    """The smallest integer type that holds every value (policies and lengths are small numbers)."""
    if not values.size:
        return values.astype(np.int64)
    low, high = int(values.min()), int(values.max())
    return values.astype(np.min_scalar_type(high) if low >= 0 else np.min_scalar_type(min(low, -high - 1)))


def _snapshot_read(key: tuple[str, int]) -> _Entries | None:
    """The shared snapshot of a project's entries, or None (none, another format, damaged, cache down)."""
    try:
        data = caches[SNAPSHOT_CACHE].get(_snapshot_key(*key))
    except Exception:  # a cache that is down must not take the leaderboard with it
        logger.warning("leaderboard snapshot: cannot read the %r cache", SNAPSHOT_CACHE, exc_info=True)
        return None
    try:
        if data is None or data["format"] != _SNAPSHOT_FORMAT:
            return None
        ids = np.asarray(data["ids"], dtype=np.int64)
        policy, length = np.asarray(data["policy"], dtype=np.int64), np.asarray(data["length"], dtype=float)
        names = [str(name) for name in data["names"]]
        if (policy.ndim != 2 or policy.shape != length.shape or len(ids) != len(policy)
                or (len(ids) and (policy.max() >= len(names) or int(ids[-1]) > data["top"]))):
            return None
        return _Entries(top=int(data["top"]), count=int(data["count"]), ids=ids, policy=policy, length=length,
                        names=names)
    except (KeyError, TypeError, ValueError):
        return None


def _snapshot_write(key: tuple[str, int], entries: _Entries) -> bool:
    # Lengths are whole characters (floats only for the ratios): stored as integers.
    data = {"format": _SNAPSHOT_FORMAT, "top": entries.top, "count": entries.count, "ids": _narrow(entries.ids),
            "policy": _narrow(entries.policy), "length": _narrow(entries.length.astype(np.int64)),
            "names": list(entries.names)}
    try:
        caches[SNAPSHOT_CACHE].set(_snapshot_key(*key), data, timeout=None)
        return True
    except Exception:
        logger.warning("leaderboard snapshot: cannot write the %r cache", SNAPSHOT_CACHE, exc_info=True)
        return False


def leaderboard_cache_clear(*, shared: bool = True) -> None:
    """Forget the comparisons' samples this process kept and, unless `shared` is False (as in a process that
    has just started), the shared snapshots too: the whole `dashboard` cache, as dashboard_cache_clear."""
    with _LOCK:
        _ENTRIES_CACHE.clear()
        _SNAPSHOT_COUNT.clear()
    if shared:
        try:
            caches[SNAPSHOT_CACHE].clear()
        except Exception:
            logger.warning("leaderboard snapshot: cannot clear the %r cache", SNAPSHOT_CACHE, exc_info=True)


def _project_entries(project) -> _Entries:
    """_Entries of every comparison of the project: 2 queries (a check, then the comparisons newer than
    those kept, or all of them when the check fails: a comparison committed late below the kept `top`).
    A process that kept nothing of the project starts from the shared snapshot, checked the same way."""
    key = (Comparison.objects.db, project.id)
    with _LOCK:
        cached = _ENTRIES_CACHE.get(key)
        shared_count = _SNAPSHOT_COUNT.get(key)
    if cached is None:
        cached = _snapshot_read(key) or _NO_ENTRIES
        shared_count = cached.count if cached.count else None
    state = Comparison.objects.filter(project=project).aggregate(
        top=Max("id"), count=Count("id"), kept=Count("id", filter=Q(id__lte=cached.top)))
    top, count = state["top"] or 0, state["count"]
    if state["kept"] != cached.count:
        cached, shared_count = _NO_ENTRIES, None
    if top > cached.top:
        cached = cached.extended(*_sample_columns(project, after=cached.top, top=top), top=top, count=count)
    rewrite_after = min(SNAPSHOT_REWRITE_COMPARISONS, SNAPSHOT_REWRITE_SHARE * cached.count)
    if cached.count and (shared_count is None or cached.count - shared_count >= rewrite_after):
        shared_count = cached.count if _snapshot_write(key, cached) else None
    with _LOCK:
        _ENTRIES_CACHE[key] = cached
        _ENTRIES_CACHE.move_to_end(key)
        while len(_ENTRIES_CACHE) > _ENTRIES_CACHE_PROJECTS:
            evicted, _ = _ENTRIES_CACHE.popitem(last=False)
            _SNAPSHOT_COUNT.pop(evicted, None)
        if shared_count is None:
            _SNAPSHOT_COUNT.pop(key, None)
        else:
            _SNAPSHOT_COUNT[key] = shared_count
    return cached


def _ranked_pairs(others: np.ndarray, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Each label's pairwise outcomes between different policies: (label, winning column, losing column) for every
    pair of present samples (policy ≥ 0 in `others`, (L, K)) with rank[winner] < rank[loser] (`ranks`, (L, K)),
    in (label, winner, loser) order, and how many such pairs were dropped for holding one policy twice."""
    present = others >= 0
    better = (ranks[:, :, None] < ranks[:, None, :]) & present[:, :, None] & present[:, None, :]  # (L, K, K)
    same_policy = others[:, :, None] == others[:, None, :]
    label_index, winner, loser = np.nonzero(better & ~same_policy)
    return label_index, winner, loser, int((better & same_policy).sum())


def _chosen_pairs(others: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """_ranked_pairs for best-of-K labels (the chosen sample beat every other present one), the same arrays in
    the same order, on (L, K) arrays instead of (L, K, K): ~20 ms of a warm board at 100k labels."""
    lost = (others >= 0) & (np.arange(others.shape[1]) != chosen[:, None])
    same_policy = others == others[np.arange(len(others)), chosen][:, None]
    label_index, loser = np.nonzero(lost & ~same_policy)
    return label_index, chosen[label_index], loser, int((lost & same_policy).sum())


def _clean_labels(project):
    return Label.objects.filter(comparison__project=project, skipped=False).exclude(
        comparison_id__in=andon_excluded_comparison_ids(project=project))


def project_leaderboard(*, project, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> Leaderboard:
    """Every policy with samples in the project's labeled comparisons, ranked by a Bradley–Terry fit over
    all clean labels, with bootstrap 95% intervals (comparisons resampled, fixed `seed`), and its raw and
    length-controlled win rates against the base policy (the module docstring has the rules). 2 queries, 3
    when comparisons this process has not read yet have come (their samples are kept: `_project_entries`).

    Against the base: the pairwise outcomes between a sample of the policy and a base-policy sample
    (a label whose chosen sample is one of the two); raw is their win share with a Wilson interval
    (too narrow when one label gives several such outcomes), length-controlled is
    labeling.metrics.length_controlled_win_rates on character lengths (an empty text counts as 1).
    """
    # 1. Reads: the clean labels' answers (with their ranks where the label type says more than the chosen
    # sample), and (kept between calls) the samples of the project's comparisons.
    ranked = project.label_type in (Project.LabelType.RANKING, Project.LabelType.PAIRWISE_CONFIDENCE)
    answers, answer_ranks = _answers_with_ranks(project) if ranked else (_answers(project), None)
    entries = _project_entries(project)
    ids, table, lengths_table, policies = entries.ids, entries.policy, entries.length, entries.names
    n, k = len(policies), table.shape[1]

    # 2. Every clean label's pairwise outcomes, from the comparisons × positions table: each label's ranks of
    # its samples (best-of-K: 1 for the chosen, 2 for the others), and a pair (i, j) wherever rank i < rank j.
    if len(ids):
        at = np.searchsorted(ids, answers[:, 0]).clip(max=len(ids) - 1)
        chosen = answers[:, 1]
        known = (ids[at] == answers[:, 0]) & (chosen < k)
        at, chosen = at[known], chosen[known]
    else:
        known = np.zeros(len(answers), dtype=bool)
        at = chosen = np.zeros(0, dtype=np.int64)
    valid = table[at, chosen] >= 0
    at, chosen = at[valid], chosen[valid]
    others = table[at]  # (L, K)
    if answer_ranks is None:
        label_index, column_win, column, within = _chosen_pairs(others, chosen)
    else:
        ranks = np.full((len(at), k), np.iinfo(np.int64).max)  # a position past the project's K: never ranked
        width = min(k, answer_ranks.shape[1])
        ranks[:, :width] = answer_ranks[known][valid][:, :width]
        label_index, column_win, column, within = _ranked_pairs(others, ranks)
    group = at[label_index]
    winner_of, loser = others[label_index, column_win], others[label_index, column]
    win_length, lose_length = lengths_table[group, column_win], lengths_table[group, column]

    # 3. Bradley–Terry with the bootstrap; the base policy is 0 when it has outcomes.
    base = policies.index(BASE_POLICY_SOURCE) if BASE_POLICY_SOURCE in policies else None
    anchored = base is not None and bool(((winner_of == base) | (loser == base)).any())
    fit = bradley_terry_bootstrap(group, winner_of, loser, n, draws=draws, seed=seed,
                                  anchor=base if anchored else None) if n else None

    # 4. Against the base: raw rate and the length-controlled regression on the same outcomes.
    vs_base: list[Rate | None] = [None] * n
    lc: list[LengthControlled | None] = [None] * n
    slope = None
    if base is not None:
        policy_won = loser == base
        against = policy_won | (winner_of == base)
        other = np.where(policy_won, winner_of, loser)[against]
        won = policy_won[against]
        ratio = np.where(policy_won, np.log(win_length / lose_length), np.log(lose_length / win_length))[against]
        wins, total = np.bincount(other, won, minlength=n), np.bincount(other, minlength=n)
        vs_base = [rate(int(wins[i]), int(total[i])) if total[i] and i != base else None for i in range(n)]
        lc, slope = length_controlled_win_rates(other, won, ratio, group[against], n)
        lc[base] = None

    # 5. Rows of the policies in labeled comparisons, best first; those with no outcome against another
    # policy last, unranked.
    labeled = np.zeros(n + 1, dtype=bool)
    labeled[table[at].ravel()] = True  # index −1 (no sample) lands on the spare last entry
    rows = []
    for i, name in enumerate(policies):
        if not labeled[i]:
            continue
        has = fit is not None and fit.games[i] > 0
        rows.append(LeaderboardRow(
            rank=None, policy=name, kind=policy_kind(name),
            strength=float(fit.strength[i]) if has else None,
            low=float(fit.low[i]) if has and not np.isnan(fit.low[i]) else None,
            high=float(fit.high[i]) if has and not np.isnan(fit.high[i]) else None,
            comparisons=int(fit.groups[i]) if fit is not None else 0, outcomes=int(fit.games[i]) if fit else 0,
            vs_base=vs_base[i], vs_base_lc=lc[i]))
    rows.sort(key=lambda r: (r.strength is None, -(r.strength or 0.0), r.policy))
    rows = [replace(r, rank=rank + 1 if r.strength is not None else None) for rank, r in enumerate(rows)]
    return Leaderboard(rows=rows, anchor="base" if anchored else "mean", labels=int(len(answers)),
                       comparisons=fit.n_groups if fit else 0, outcomes=int(len(group)),
                       within_policy_pairs=within, draws=draws, length_slope=slope)


@dataclass(frozen=True)
class RoundLatency:
    """Seconds from a comparison's publication to each of its labels, for one round's comparisons."""

    round_id: int
    round_number: int
    labels: int
    median_s: float | None
    p90_s: float | None

    @property
    def median_min(self) -> float | None:
        return None if self.median_s is None else self.median_s / 60

    @property
    def p90_min(self) -> float | None:
        return None if self.p90_s is None else self.p90_s / 60


def round_label_latencies(*, project) -> list[RoundLatency]:
    """Sample-to-label latency of each round, newest round first (2 queries): for every answered (not
    skipped) label on a comparison a run of the round published (Comparison.source_run), the time from
    the comparison's creation (its publication to labelers) to the label; median and 90th percentile.
    Labels later withdrawn by the andon cord still count: this measures the loop, not the data."""
    delay = ExpressionWrapper(F("created_at") - F("comparison__created_at"), output_field=DurationField())
    rows = list(Label.objects.filter(comparison__project=project, skipped=False,
                                     comparison__source_run__round__isnull=False)
                .values_list("comparison__source_run__round_id", delay))
    rounds = list(Round.objects.filter(project=project).order_by("-number").values_list("id", "number"))
    index = {round_id: i for i, (round_id, _) in enumerate(rounds)}
    group = np.array([index[round_id] for round_id, _ in rows], dtype=np.int64)
    seconds = np.array([d.total_seconds() for _, d in rows], dtype=float)
    quantiles = grouped_quantiles(seconds, group, len(rounds), (0.5, 0.9))
    counts = np.bincount(group, minlength=len(rounds))
    return [RoundLatency(round_id=round_id, round_number=number, labels=int(counts[i]),
                         median_s=None if np.isnan(quantiles[i, 0]) else float(quantiles[i, 0]),
                         p90_s=None if np.isnan(quantiles[i, 1]) else float(quantiles[i, 1]))
            for i, (round_id, number) in enumerate(rounds)]


LEADERBOARD_CSV_HEADER = ["rank", "policy", "kind", "strength", "strength95_low", "strength95_high", "comparisons",
                          "outcomes", "vs_base_n", "vs_base_win_rate", "vs_base_wilson95_low",
                          "vs_base_wilson95_high", "vs_base_lc_win_rate", "vs_base_lc95_low", "vs_base_lc95_high"]


def _cell(value):
    return "" if value is None else value


def leaderboard_csv_rows(board: Leaderboard) -> list[list]:
    """project_leaderboard as CSV rows (LEADERBOARD_CSV_HEADER); empty cells where a figure is undefined."""
    rows = []
    for r in board.rows:
        raw, lc = r.vs_base, r.vs_base_lc
        rows.append([_cell(r.rank), r.policy, r.kind, _cell(r.strength), _cell(r.low), _cell(r.high), r.comparisons,
                     r.outcomes, raw.n if raw else "", _cell(raw and raw.value), _cell(raw and raw.low),
                     _cell(raw and raw.high), _cell(lc and lc.value), _cell(lc and lc.low), _cell(lc and lc.high)])
    return rows


def leaderboard_json(board: Leaderboard) -> dict:
    """project_leaderboard as a JSON-ready dict: how it was computed, then one object per policy."""
    def rate_json(value):
        return None if value is None else {"n": value.n, "wins": value.hits, "value": value.value,
                                           "low": value.low, "high": value.high}

    def lc_json(value):
        return None if value is None else {"value": value.value, "low": value.low, "high": value.high}

    return {
        "scale": "natural log-odds: P(a beats b) = 1 / (1 + exp(s_b - s_a))",
        "anchor": board.anchor, "interval": f"bootstrap percentile 95%, {board.draws} draws, comparisons resampled",
        "labels": board.labels, "comparisons": board.comparisons, "outcomes": board.outcomes,
        "within_policy_pairs_dropped": board.within_policy_pairs, "length_slope": board.length_slope,
        "policies": [{"rank": r.rank, "policy": r.policy, "kind": r.kind, "strength": r.strength,
                      "low": r.low, "high": r.high, "comparisons": r.comparisons, "outcomes": r.outcomes,
                      "vs_base": rate_json(r.vs_base), "vs_base_length_controlled": lc_json(r.vs_base_lc)}
                     for r in board.rows],
    }
