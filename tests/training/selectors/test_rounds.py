"""Policy-versus-base win rate per round: the Wilson interval, the counting rules, the page and its CSV."""
import csv
import io

import pytest
from django.urls import reverse

from labeling.models import Comparison, Query, Sample
from labeling.services import comparison_create
from tests.factories import ProjectFactory, QueryFactory, TrainingRunFactory, UserFactory, make_label
from training.models import BASE_POLICY_SOURCE, Round
from training.selectors import (
    round_win_rate_table,
    round_win_rates,
    sample_side,
    win_rate_csv_rows,
)
from labeling.metrics import wilson_interval
from training.selectors.rounds import comparison_sides, label_outcome

POLICY, BASE, REF = "run7-step100", BASE_POLICY_SOURCE, "reference"
PB = [POLICY, BASE, POLICY, BASE]  # canonical 0 and 2 are wins, 1 and 3 losses

pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------- Wilson interval (no database)


def test_wilson_hand_computed():
    """8 of 10: p=0.8, centre 0.71674, half-width 0.22658 (z=1.96)."""
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.49016, abs=1e-4)
    assert high == pytest.approx(0.94332, abs=1e-4)


def test_wilson_at_the_edges_stays_inside_0_1_and_is_not_empty():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.27753, abs=1e-4)
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(1 - 0.27753, abs=1e-4) and high == 1.0


def test_wilson_symmetry_and_no_trials():
    low, high = wilson_interval(3, 7)
    mirrored = wilson_interval(4, 7)
    assert (low, high) == pytest.approx((1 - mirrored[1], 1 - mirrored[0]))
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_sample_side():
    assert sample_side("run3-step40") == "policy"
    assert sample_side(BASE_POLICY_SOURCE) == "base"
    assert sample_side("reference") is None
    assert sample_side("baseline:lead-sentence") is None


# ---------------------------------------------------------------- counting


def _comparison(project, run, sources, *, split=Query.Split.VALID):
    query = QueryFactory(project=project, split=split)
    samples = [Sample.objects.create(query=query, text=f"s{i}", source=s) for i, s in enumerate(sources)]
    comparison = comparison_create(project=project, query=query, samples=samples, labels_wanted=4)
    Comparison.objects.filter(id=comparison.id).update(source_run=run)
    return comparison


@pytest.fixture
def labelers(db):
    return [UserFactory(username=f"wr{i}") for i in range(4)]


@pytest.fixture
def round_one(project):
    rnd = Round.objects.create(project=project, number=1)
    return rnd, TrainingRunFactory(project=project, round=rnd, kind="sample")


def test_round_win_rate_hand_computed_k4(project, labelers, round_one):
    """K=4, 2 policy + 2 base samples: choosing either policy sample is a win, either base sample a loss;
    skipped labels, reference choices and comparisons without both sides are not counted."""
    rnd, run = round_one
    a, b, c, d = labelers
    mixed = _comparison(project, run, [POLICY, BASE, POLICY, BASE])
    make_label(mixed, a, chosen_index=0)            # win
    make_label(mixed, b, chosen_index=2, unsure=True)  # win (unsure counts as chosen)
    make_label(mixed, c, chosen_index=3)            # loss
    make_label(mixed, d)                            # skipped: not counted
    with_ref = _comparison(project, run, [POLICY, BASE, REF, POLICY])
    make_label(with_ref, a, chosen_index=2)         # reference chosen: not counted
    make_label(with_ref, b, chosen_index=1)         # loss
    policy_only = _comparison(project, run, [POLICY, POLICY, POLICY, POLICY])
    make_label(policy_only, a, chosen_index=0)      # no base sample: not counted
    [row] = round_win_rates(project=project)
    assert (row.round_number, row.wins, row.losses, row.n, row.unsure) == (1, 2, 2, 4, 1)
    assert row.rate == 0.5
    assert row.interval == wilson_interval(2, 4)
    # chance: 2/4 for the three labels of `mixed`, 2/3 for the loss in `with_ref` (2 policy, 1 base)
    assert row.chance == pytest.approx((0.5 * 3 + 2 / 3) / 4)


def test_round_win_rate_k3_chance_is_the_policy_share(labelers):
    project = ProjectFactory(k=3)
    rnd = Round.objects.create(project=project, number=1)
    run = TrainingRunFactory(project=project, round=rnd, kind="sample")
    comparison = _comparison(project, run, [BASE, POLICY, POLICY])
    make_label(comparison, labelers[0], chosen_index=0)
    make_label(comparison, labelers[1], chosen_index=2)
    make_label(comparison, labelers[2], chosen_index=1)
    [row] = round_win_rates(project=project)
    assert (row.wins, row.losses) == (2, 1)
    assert row.chance == pytest.approx(2 / 3)


def test_split_and_round_and_project_scoping(project, labelers, round_one):
    rnd, run = round_one
    rnd2 = Round.objects.create(project=project, number=2)
    run2 = TrainingRunFactory(project=project, round=rnd2, kind="sample")
    make_label(_comparison(project, run, PB), labelers[0], chosen_index=0)
    make_label(_comparison(project, run, PB, split=Query.Split.TRAIN), labelers[0], chosen_index=1)
    make_label(_comparison(project, run2, PB[::-1]), labelers[0], chosen_index=0)
    no_round = TrainingRunFactory(project=project, kind="sample")  # published outside any round
    make_label(_comparison(project, no_round, PB), labelers[0], chosen_index=0)
    other = ProjectFactory(k=4)
    other_run = TrainingRunFactory(project=other, round=Round.objects.create(project=other, number=1), kind="sample")
    make_label(_comparison(other, other_run, PB), labelers[0], chosen_index=0)

    valid = round_win_rates(project=project)
    assert [(r.round_number, r.wins, r.losses) for r in valid] == [(2, 0, 1), (1, 1, 0)]
    every = round_win_rates(project=project, split=None)
    assert [(r.round_number, r.wins, r.losses) for r in every] == [(2, 0, 1), (1, 1, 1)]
    assert round_win_rates(project=project, split=Query.Split.TEST)[0].rate is None
    table = round_win_rate_table(project=project)  # both at once, as the runs page reads them
    assert [row[Query.Split.VALID] for row in table] == valid and [row[None] for row in table] == every


def test_round_win_rates_query_count_does_not_grow(project, labelers, round_one, django_assert_num_queries):
    rnd, run = round_one
    make_label(_comparison(project, run, PB), labelers[0], chosen_index=0)
    with django_assert_num_queries(2):
        round_win_rates(project=project)
    for n in range(2, 6):
        more = Round.objects.create(project=project, number=n)
        more_run = TrainingRunFactory(project=project, round=more, kind="sample")
        for labeler in labelers:
            make_label(_comparison(project, more_run, [BASE, POLICY, BASE, POLICY]), labeler, chosen_index=n % 4)
    with django_assert_num_queries(2):
        rows = round_win_rates(project=project)
    assert sum(r.n for r in rows) == 1 + 4 * 4


def test_round_win_rate_table_counts_as_label_outcome_does(project, labelers, round_one):
    """The table's SQL applies the rules of `sample_side` and `label_outcome` (which the sweep uses): on
    comparisons of mixed sources (other baselines, a name that only looks like one, references), every
    split, both rounds, the counts and the chance equal a tally through those Python rules."""
    import random

    from labeling.models import Label

    rnd, run = round_one
    rnd2 = Round.objects.create(project=project, number=2)
    runs = [run, TrainingRunFactory(project=project, round=rnd2, kind="sample")]
    pool = [POLICY, BASE, REF, "baseline:lead-3", "Baseline:not-one", "run8-step1"]
    draw = random.Random(7)
    for i in range(24):
        split = (Query.Split.VALID, Query.Split.TRAIN)[i % 2]
        comparison = _comparison(project, runs[i % 2], [draw.choice(pool) for _ in range(4)], split=split)
        for labeler in labelers[: 1 + i % 4]:
            chosen = draw.choice([None, 0, 1, 2, 3])
            make_label(comparison, labeler, chosen_index=chosen, unsure=draw.random() < 0.3,
                       confidence=draw.choice([None, 5]) if chosen in (0, 1) else None)  # 5: no preference
    labels = Label.objects.filter(comparison__project=project, skipped=False)
    sides = comparison_sides(labels)
    expected = {}
    for comparison_id, chosen, confidence, unsure, round_id, split in labels.values_list(
            "comparison_id", "chosen_index", "confidence", "unsure", "comparison__source_run__round_id",
            "comparison__query__split"):
        side = label_outcome(sides[comparison_id], chosen, confidence)
        if side is None:
            continue
        share = list(sides[comparison_id].values()).count("policy") / sum(
            v in ("policy", "base") for v in sides[comparison_id].values())
        for key in ((round_id, split), (round_id, None)):
            wins, losses, n_unsure, shares = expected.get(key, (0, 0, 0, 0.0))
            expected[key] = (wins + (side == "policy"), losses + (side == "base"), n_unsure + unsure, shares + share)
    table = round_win_rate_table(project=project, splits=(Query.Split.VALID, Query.Split.TRAIN, None))
    assert sum(row[None].n for row in table) > 10  # the draw holds counted labels
    assert labels.filter(confidence=5).exists()
    for row in table:
        for split, rate in row.items():
            wins, losses, unsure, shares = expected.get((rate.round_id, split), (0, 0, 0, 0.0))
            assert (rate.wins, rate.losses, rate.unsure) == (wins, losses, unsure)
            assert rate.chance == (pytest.approx(shares / (wins + losses)) if wins + losses else None)


# ---------------------------------------------------------------- page and CSV


def test_runs_page_shows_rate_and_interval(client, researcher, project, labelers, round_one):
    rnd, run = round_one
    comparison = _comparison(project, run, PB)
    for labeler in labelers[:3]:
        make_label(comparison, labeler, chosen_index=0)
    make_label(comparison, labelers[3], chosen_index=1)
    client.force_login(researcher)
    html = client.get(reverse("training-project-runs", kwargs={"slug": project.slug})).content.decode()
    low, high = wilson_interval(3, 4)
    assert "Policy vs base win rate" in html
    assert f"0.750 [{low:.3f}, {high:.3f}]" in html


def test_win_rate_csv(client, researcher, project, labelers, round_one):
    rnd, run = round_one
    comparison = _comparison(project, run, PB)
    make_label(comparison, labelers[0], chosen_index=0)
    make_label(comparison, labelers[1], chosen_index=1)
    client.force_login(researcher)
    response = client.get(reverse("training-win-rates-csv", kwargs={"slug": project.slug}))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["round"], r["split"], r["n"], r["wins"], r["losses"]) for r in rows] == [
        ("1", "valid", "2", "1", "1"), ("1", "all", "2", "1", "1")]
    assert float(rows[0]["win_rate"]) == 0.5
    assert float(rows[0]["wilson95_low"]) == pytest.approx(wilson_interval(1, 2)[0])


def test_win_rate_csv_roles(client, contractor, project):
    url = reverse("training-win-rates-csv", kwargs={"slug": project.slug})
    response = client.get(url)
    assert response.status_code == 302 and reverse("login") in response["Location"]
    client.force_login(contractor)
    assert client.get(url).status_code == 403


def test_win_rate_csv_rows_hand_checked(project, labelers, round_one):
    rnd, run = round_one
    Round.objects.create(project=project, number=2)  # no labels yet: empty cells, not zeros or errors
    comparison = _comparison(project, run, PB, split=Query.Split.TRAIN)
    make_label(comparison, labelers[0], chosen_index=0, unsure=True)
    low, high = wilson_interval(1, 1)
    assert win_rate_csv_rows(round_win_rate_table(project=project)) == [
        [2, "valid", 0, 0, 0, "", "", "", "", 0],
        [1, "valid", 0, 0, 0, "", "", "", "", 0],
        [2, "all", 0, 0, 0, "", "", "", "", 0],
        [1, "all", 1, 1, 0, 1.0, low, high, 0.5, 1],
    ]
