"""The leaderboard of policies (Bradley–Terry over clean labels, win rates against the base) and sample-to-label
latency per round, read from the database and checked against hand computations."""
import math
from datetime import timedelta

import numpy as np
import pytest
from django.core.cache import caches
from django.db import connection

from labeling import metrics
from labeling.models import Comparison, Label, Sample
from labeling.services import comparison_create
from tests.factories import ProjectFactory, QueryFactory, TrainingRunFactory, UserFactory, make_label
from training.models import BASE_POLICY_SOURCE, AndonPull, Round
from training.selectors import leaderboard
from training.selectors import (
    LEADERBOARD_CSV_HEADER,
    leaderboard_csv_rows,
    leaderboard_cache_clear,
    leaderboard_json,
    policy_kind,
    project_leaderboard,
    round_label_latencies,
)

POLICY, BASE, REF = "run7-step100", BASE_POLICY_SOURCE, "reference"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _samples_not_kept():
    """Each test starts as a fresh process would, without the comparisons' samples kept by earlier ones."""
    leaderboard_cache_clear()


@pytest.fixture(autouse=True, params=["arrays", "rows"])
def read_path(request, monkeypatch):
    """Every test on both reads: PostgreSQL's arrays (array_send, parsed by numpy) and plain rows (any database)."""
    if request.param == "rows":
        monkeypatch.setattr(leaderboard, "_arrays_used", lambda db: False)
    elif connection.vendor != "postgresql":
        pytest.skip("the array reads exist on PostgreSQL only")
    return request.param


def _comparison(project, sources, *, texts=None, run=None):
    query = QueryFactory(project=project)
    texts = texts or [f"sample {i} of {query.id}" for i in range(len(sources))]
    samples = [Sample.objects.create(query=query, text=t, source=s) for t, s in zip(texts, sources, strict=True)]
    comparison = comparison_create(project=project, query=query, samples=samples, labels_wanted=4)
    if run is not None:
        Comparison.objects.filter(id=comparison.id).update(source_run=run)
    return comparison


@pytest.fixture
def labelers(db):
    return [UserFactory(username=f"lb{i}") for i in range(5)]


def test_policy_kind():
    assert [policy_kind(s) for s in (POLICY, BASE, REF, "baseline:lead-3", "imported-gpt")] == [
        "policy", "base", "reference", "baseline", "policy"]


def test_leaderboard_hand_computed(project, labelers):
    """K=4 [P, base, P, ref]. a picks P: P>base, P>ref (P>P is within one policy: dropped). b picks base:
    base>P twice, base>ref. c (unsure, counted as chosen) and e pick ref: ref>P twice, ref>base, each.
    d skips. A comparison withdrawn by an open andon pull counts for nothing."""
    a, b, c, d, e = labelers
    comparison = _comparison(project, [POLICY, BASE, POLICY, REF])
    make_label(comparison, a, chosen_index=0)
    make_label(comparison, b, chosen_index=1)
    make_label(comparison, c, chosen_index=3, unsure=True)
    make_label(comparison, d)
    make_label(comparison, e, chosen_index=3)
    withdrawn = _comparison(project, [POLICY, BASE, POLICY, BASE])
    make_label(withdrawn, a, chosen_index=0)
    pull = AndonPull.objects.create(run=TrainingRunFactory(project=project), role="researcher", reason="bad")
    pull.withdrawn.add(withdrawn)
    other = ProjectFactory(k=4)  # another project's labels never count
    make_label(_comparison(other, [POLICY, BASE, POLICY, REF]), a, chosen_index=0)

    board = project_leaderboard(project=project, draws=50)

    p, base, ref = 0, 1, 2  # wins[i, j]: i beat j
    wins = np.array([[0, 1, 1], [2, 0, 1], [4, 2, 0]])
    expected = metrics.bradley_terry(wins, anchor=base)
    by_name = {r.policy: r for r in board.rows}
    assert by_name[POLICY].strength == pytest.approx(expected[p])
    assert by_name[REF].strength == pytest.approx(expected[ref])
    assert by_name[BASE].strength == 0.0 and board.anchor == "base"
    assert [r.policy for r in board.rows] == [REF, BASE, POLICY]  # ref 6 wins of 8, base 3 of 6, P 2 of 8
    assert [r.rank for r in board.rows] == [1, 2, 3]
    assert (board.labels, board.comparisons, board.outcomes, board.within_policy_pairs) == (4, 1, 11, 1)
    assert [(r.comparisons, r.outcomes) for r in board.rows] == [(1, 8), (1, 6), (1, 8)]
    # Against the base: P won 1 (a) and lost 2 (b); ref lost 1 (b) and won 2 (c, e).
    assert (by_name[POLICY].vs_base.hits, by_name[POLICY].vs_base.n) == (1, 3)
    assert (by_name[REF].vs_base.hits, by_name[REF].vs_base.n) == (2, 3)
    assert by_name[BASE].vs_base is None and by_name[BASE].vs_base_lc is None
    low, high = metrics.wilson_interval(1, 3)
    assert (by_name[POLICY].vs_base.low, by_name[POLICY].vs_base.high) == pytest.approx((low, high))


def test_length_controlled_rate_uses_the_log_length_ratio_of_each_outcome(labelers):
    """The page's length-controlled figure is the regression on (policy's length / base's length) in
    characters, one row per outcome, clustered by comparison."""
    project = ProjectFactory(k=2)
    rows = []  # (policy won, log ratio, comparison)
    lengths = [(30, 10, 0), (30, 10, 0), (10, 20, 1), (20, 20, 1), (40, 10, 0), (10, 10, 1), (15, 30, 0)]
    for i, (policy_len, base_len, chosen) in enumerate(lengths):
        comparison = _comparison(project, [POLICY, BASE], texts=["p" * policy_len, "b" * base_len])
        make_label(comparison, labelers[0], chosen_index=chosen)
        rows.append((chosen == 0, math.log(policy_len / base_len), i))
    board = project_leaderboard(project=project, draws=0)
    won, ratio, group = (np.array(column) for column in zip(*rows, strict=True))
    [expected, _], slope = metrics.length_controlled_win_rates(np.zeros(len(rows), int), won, ratio, group, 2)
    [policy] = [r for r in board.rows if r.policy == POLICY]
    assert policy.vs_base.value == pytest.approx(4 / 7)
    assert policy.vs_base_lc == pytest.approx(expected)
    assert board.length_slope == pytest.approx(slope) and slope > 0  # the longer sample tends to win


def test_without_base_the_mean_is_zero_and_unmatched_policies_are_unranked(project, labelers):
    make_label(_comparison(project, ["ckpt-a", "ckpt-b", "ckpt-b", "ckpt-c"]), labelers[0], chosen_index=1)
    make_label(_comparison(project, ["solo", "solo", "solo", "solo"]), labelers[0], chosen_index=2)
    board = project_leaderboard(project=project, draws=20)
    assert board.anchor == "mean"
    ranked = [r for r in board.rows if r.rank is not None]
    assert sum(r.strength for r in ranked) == pytest.approx(0, abs=1e-9)
    assert ranked[0].policy == "ckpt-b"
    assert board.rows[-1].policy == "solo" and board.rows[-1].rank is None and board.rows[-1].strength is None
    assert board.within_policy_pairs == 1 + 3


def test_leaderboard_reads_in_three_queries_and_keeps_the_samples_it_read(project, labelers,
                                                                          django_assert_num_queries):
    """Labels, a check of the project's comparisons, and the samples of comparisons not read before: a
    second call with no new comparison reads no sample; a new comparison's samples are read and used."""
    for labeler in labelers:
        make_label(_comparison(project, [POLICY, BASE, REF, "run8-step5"]), labeler, chosen_index=labeler.id % 4)
    with django_assert_num_queries(3):
        board = project_leaderboard(project=project)
    assert board.labels == len(labelers)
    with django_assert_num_queries(2):
        assert project_leaderboard(project=project) == board
    make_label(_comparison(project, ["run9-step1", BASE, BASE, BASE]), labelers[0], chosen_index=0)
    with django_assert_num_queries(3):
        later = project_leaderboard(project=project)
    assert later.labels == len(labelers) + 1 and later.rows[0].policy == "run9-step1"


def test_kept_samples_are_read_again_when_an_older_comparison_appears(project, labelers):
    """A comparison committed late, below the newest one kept, fails the check: everything is read again."""
    first = _comparison(project, [POLICY, BASE, POLICY, BASE])
    make_label(first, labelers[0], chosen_index=1)
    project_leaderboard(project=project, draws=0)
    late = _comparison(project, ["late-policy", BASE, BASE, BASE])
    make_label(late, labelers[1], chosen_index=0)
    newer = _comparison(project, [POLICY, BASE, POLICY, BASE])
    make_label(newer, labelers[2], chosen_index=0)
    project_leaderboard(project=project, draws=0)  # keeps every comparison up to `newer`
    Comparison.objects.filter(id=late.id).update(project=ProjectFactory(k=4))  # `late` leaves the project ...
    leaderboard_cache_clear()
    project_leaderboard(project=project, draws=0)  # ... kept: first and newer
    Comparison.objects.filter(id=late.id).update(project=project)  # ... and comes back, below the newest kept
    assert "late-policy" in [r.policy for r in project_leaderboard(project=project, draws=0).rows]


def test_empty_project_has_an_empty_leaderboard(project):
    board = project_leaderboard(project=project)
    assert board.rows == [] and board.labels == 0
    assert leaderboard_json(board)["policies"] == []


def test_csv_and_json_rows(project, labelers):
    comparison = _comparison(project, [POLICY, BASE, POLICY, BASE])
    make_label(comparison, labelers[0], chosen_index=0)
    make_label(comparison, labelers[1], chosen_index=3)
    make_label(comparison, labelers[2], chosen_index=2)
    board = project_leaderboard(project=project, draws=30)
    rows = leaderboard_csv_rows(board)
    assert len(rows[0]) == len(LEADERBOARD_CSV_HEADER)
    assert [row[:3] for row in rows] == [[1, POLICY, "policy"], [2, BASE, "base"]]
    assert rows[0][8:10] == [6, pytest.approx(4 / 6)]  # 2 wins against each base sample twice, 2 losses
    assert rows[1][8:] == [""] * 7  # the base against itself: empty cells
    data = leaderboard_json(board)
    assert data["anchor"] == "base" and data["within_policy_pairs_dropped"] == 3
    assert data["policies"][0]["vs_base"]["n"] == 6 and data["policies"][1]["strength"] == 0.0


def test_round_label_latencies(project, labelers):
    """Median and p90 of label time minus comparison creation, per round of the publishing run; skips and
    comparisons outside rounds left out."""
    rounds = [Round.objects.create(project=project, number=n) for n in (1, 2, 3)]
    runs = [TrainingRunFactory(project=project, round=r, kind="sample") for r in rounds]
    delays = {0: [10, 20, 30, 40], 1: [60]}
    for index, minutes in delays.items():
        for i, delay in enumerate(minutes):
            comparison = _comparison(project, [POLICY, BASE, POLICY, BASE], run=runs[index])
            label = make_label(comparison, labelers[i % 4], chosen_index=0)
            Label.objects.filter(id=label.id).update(created_at=comparison.created_at + timedelta(minutes=delay))
    skipped = make_label(_comparison(project, [POLICY, BASE, POLICY, BASE], run=runs[1]), labelers[0])
    Label.objects.filter(id=skipped.id).update(created_at=skipped.comparison.created_at + timedelta(days=9))
    make_label(_comparison(project, [POLICY, BASE, POLICY, BASE], run=TrainingRunFactory(project=project)),
               labelers[1], chosen_index=0)
    latencies = round_label_latencies(project=project)
    assert [(r.round_number, r.labels) for r in latencies] == [(3, 0), (2, 1), (1, 4)]
    assert latencies[0].median_s is None and latencies[0].p90_min is None
    assert latencies[1].median_min == pytest.approx(60) and latencies[1].p90_min == pytest.approx(60)
    assert latencies[2].median_min == pytest.approx(25) and latencies[2].p90_min == pytest.approx(37)


def test_policies_only_in_unlabeled_comparisons_are_not_listed(project, labelers):
    make_label(_comparison(project, [POLICY, BASE, POLICY, BASE]), labelers[0], chosen_index=0)
    _comparison(project, ["never-labeled", BASE, POLICY, BASE])
    assert [r.policy for r in project_leaderboard(project=project, draws=0).rows] == [POLICY, BASE]


def test_lengths_are_characters_and_policies_numbered_by_first_appearance(project, labelers):
    """Non-ASCII texts count characters, not bytes (as Length in the ORM), on both reads; policies are
    numbered in the order they first appear by comparison and position, whatever order the rows came in."""
    texts = ["é" * 10, "b" * 20, "日本語" * 3, ""]
    first = _comparison(project, ["ckpt-z", BASE, "ckpt-a", REF], texts=texts)
    second = _comparison(project, [REF, "ckpt-new", BASE, BASE])
    make_label(first, labelers[0], chosen_index=0)
    comparison, position, names, policy, length = leaderboard._sample_columns(project, after=0, top=second.id)
    entries = leaderboard._NO_ENTRIES.extended(comparison, position, names, policy, length, top=second.id, count=2)
    assert entries.names == ["ckpt-z", BASE, "ckpt-a", REF, "ckpt-new"]
    assert entries.ids.tolist() == [first.id, second.id]
    assert entries.length[0].tolist() == [10, 20, 9, 1]  # the empty text counts as 1
    assert entries.policy.tolist() == [[0, 1, 2, 3], [3, 4, 1, 1]]
    shuffled = np.random.default_rng(1).permutation(len(comparison))
    renamed = [names[i] for i in np.argsort(np.random.default_rng(2).permutation(len(names)))]
    renumber = np.array([renamed.index(name) for name in names])
    again = leaderboard._NO_ENTRIES.extended(comparison[shuffled], position[shuffled], renamed,
                                            renumber[policy[shuffled]], length[shuffled], top=second.id, count=2)
    assert again.names == entries.names and again.policy.tolist() == entries.policy.tolist()


def test_array_parse_reads_postgresql_arrays_and_refuses_others(db):
    if connection.vendor != "postgresql":
        pytest.skip("array_send is PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("SELECT array_send(ARRAY[1, -2, 30000]::int2[]), array_send(ARRAY[5, 2147483647]::int4[]), "
                       "array_send(ARRAY[-1, 9007199254740993]::int8[]), array_send('{}'::int8[]), "
                       "array_send(ARRAY[1, NULL]::int4[]), array_send(ARRAY[[1, 2], [3, 4]]::int4[]), "
                       "array_send(ARRAY['ab']::text[])")
        small, int4, big, empty, with_null, matrix, text = cursor.fetchone()
    assert leaderboard._array_parse(small).tolist() == [1, -2, 30000]
    assert leaderboard._array_parse(int4).tolist() == [5, 2147483647]
    assert leaderboard._array_parse(big).tolist() == [-1, 9007199254740993]
    assert leaderboard._array_parse(empty).tolist() == []
    for bad in (with_null, matrix, text):
        with pytest.raises(ValueError, match="array from array_send|without NULLs"):
            leaderboard._array_parse(bad)


def test_a_fresh_process_starts_from_the_shared_snapshot(project, labelers, django_assert_num_queries):
    """The first call of a process (nothing kept in it) reads the snapshot an earlier one shared: labels and
    the check only, same board; newer comparisons are read on top of it; a snapshot that fails the check
    (a comparison left the project) is read again from the database; a damaged one is ignored."""
    for labeler in labelers:
        make_label(_comparison(project, [POLICY, BASE, REF, "run8-step5"], texts=["a" * 5, "bb", "ccc", "d" * 40]),
                   labeler, chosen_index=labeler.id % 4)
    board = project_leaderboard(project=project, draws=20)
    leaderboard_cache_clear(shared=False)
    with django_assert_num_queries(2):
        assert project_leaderboard(project=project, draws=20) == board
    newer = _comparison(project, ["run9-step1", BASE, BASE, BASE])
    make_label(newer, labelers[0], chosen_index=0)
    leaderboard_cache_clear(shared=False)
    with django_assert_num_queries(3):
        later = project_leaderboard(project=project, draws=20)
    assert later.rows[0].policy == "run9-step1"
    Comparison.objects.filter(id=newer.id).update(project=ProjectFactory(k=4))  # the snapshot no longer matches
    leaderboard_cache_clear(shared=False)
    with django_assert_num_queries(3):
        assert project_leaderboard(project=project, draws=20) == board
    key = leaderboard._snapshot_key(Comparison.objects.db, project.id)
    caches[leaderboard.SNAPSHOT_CACHE].set(key, {"format": leaderboard._SNAPSHOT_FORMAT, "top": 1}, timeout=None)
    leaderboard_cache_clear(shared=False)
    with django_assert_num_queries(3):
        assert project_leaderboard(project=project, draws=20) == board
    leaderboard_cache_clear()  # shared too: nothing is left to start from
    assert caches[leaderboard.SNAPSHOT_CACHE].get(key) is None


def test_a_ranking_gives_every_ordered_pair_and_the_scale_midpoint_is_a_tie(labelers):
    """Ranking project, K=3 [P, base, ref]: a ranks ref > P = base (ref>P, ref>base; the tie gives nothing), b ranks
    P > base > ref (P>base, P>ref, base>ref). A pairwise-confidence project: a 5 ("about the same") is no outcome,
    a 2 is one for the side it prefers."""
    from labeling.models import Project

    a, b = labelers[:2]
    ranking = ProjectFactory(k=3, label_type=Project.LabelType.RANKING)
    comparison = _comparison(ranking, [POLICY, BASE, REF])
    make_label(comparison, a, chosen_index=2, ranking=[2, 2, 1])
    make_label(comparison, b, chosen_index=0, ranking=[1, 2, 3])
    board = project_leaderboard(project=ranking, draws=0)
    p, base, ref = 0, 1, 2
    wins = np.array([[0, 1, 1], [0, 0, 1], [1, 1, 0]])  # wins[i, j]: i beat j
    expected = metrics.bradley_terry(wins, anchor=base)
    by_name = {r.policy: r for r in board.rows}
    assert (board.outcomes, board.within_policy_pairs) == (5, 0)
    assert by_name[POLICY].strength == pytest.approx(expected[p])
    assert by_name[REF].strength == pytest.approx(expected[ref])
    assert (by_name[POLICY].vs_base.hits, by_name[POLICY].vs_base.n) == (1, 1)  # the tie is not a game

    scale = ProjectFactory(k=2, label_type=Project.LabelType.PAIRWISE_CONFIDENCE)
    pair = _comparison(scale, [POLICY, BASE])
    make_label(pair, a, chosen_index=0, confidence=5)
    make_label(pair, b, chosen_index=1, confidence=8)
    board = project_leaderboard(project=scale, draws=0)
    assert board.outcomes == 1 and board.labels == 2
    by_name = {r.policy: r for r in board.rows}
    assert (by_name[POLICY].vs_base.hits, by_name[POLICY].vs_base.n) == (0, 1)


def test_best_of_k_pairs_are_the_ranked_pairs_of_rank_1_for_the_chosen():
    """The best-of-K shortcut gives exactly the general rule's outcomes (same arrays, same order: the bootstrap's
    draws depend on it), with absent samples (−1) and repeated policies in the table."""
    rng = np.random.default_rng(7)
    others = rng.integers(-1, 4, size=(500, 4))
    chosen = rng.integers(0, 4, size=500)
    others[np.arange(500), chosen] = rng.integers(0, 4, size=500)  # the chosen sample is always present
    ranks = np.where(np.arange(4) == chosen[:, None], 1, 2)
    fast, general = leaderboard._chosen_pairs(others, chosen), leaderboard._ranked_pairs(others, ranks)
    for got, expected in zip(fast[:3], general[:3]):
        np.testing.assert_array_equal(got, expected)
    assert fast[3] == general[3] > 0 and len(fast[0]) > 500
