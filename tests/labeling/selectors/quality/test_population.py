"""The population anomaly test (labeling/selectors/quality/population.py): a small project worked out by
hand, and simulated labelers (a `random` one among honest `sentiment` ones, seeded)."""
import random

import pytest

from labeling.roles import CONTRACTOR
from labeling.selectors.quality import ALPHA, dashboard_cache_clear, labeler_detail, labelers_quality
from labeling.services.simulation import LabelerSpec, simulate_labeling, simulated_labelers_ensure
from tests.factories import UserFactory, make_comparison
from tests.labeling.quality_helpers import add_label

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("dashboard_path")]


@pytest.fixture(autouse=True)
def _fresh_dashboard_cache():
    dashboard_cache_clear()


def _hand_world(project):
    """K = 4. Answers (None: skipped), counts per choice, π = share of labels in the majority:
    C1 a0 b0 c0 d1 → (3,1,0,0), π 3/4      C2 a1 b1 d2 → (0,2,1,0), π 2/3     C3 a0 d3 → tie, π 1
    C4 a2 b2 c2 d2 → all agree, π 1        C5 b skipped, d1 → one answer, π 1  C6 a0 b1 c1 d0 → tie, π 1
    C7 a3 b3 c0 d3 → (1,0,0,3), π 3/4."""
    users = {name: UserFactory(username=f"pop-{name}", role=CONTRACTOR) for name in "abcd"}
    answers = [
        {"a": 0, "b": 0, "c": 0, "d": 1}, {"a": 1, "b": 1, "d": 2}, {"a": 0, "d": 3}, {"a": 2, "b": 2, "c": 2, "d": 2},
        {"b": None, "d": 1}, {"a": 0, "b": 1, "c": 1, "d": 0}, {"a": 3, "b": 3, "c": 0, "d": 3},
    ]
    comparisons = []
    for by_user in answers:
        comparison = make_comparison(project, labels_wanted=4)
        comparisons.append(comparison)
        for name, chosen in by_user.items():
            add_label(comparison, users[name], chosen)
    return users, comparisons


def test_population_test_hand_computed(project):
    """d: C1 (π 3/4) and C2 (2/3) outside the majority, C7 (3/4) in it → p = P(A ≤ 1) = 9/48, statistic (1 − 13/6)/3.
    c: C1 in, C7 out → p = 1 − (3/4)² = 7/16. a and b agree on all three informative comparisons → p = 1."""
    _hand_world(project)
    rows = {q.username: q for q in labelers_quality(project)}
    d, c = rows["pop-d"].population, rows["pop-c"].population
    assert (d.n, d.observed) == (3, 1)
    assert d.expected == pytest.approx(3 / 4 + 2 / 3 + 3 / 4)
    assert d.p_value == pytest.approx(9 / 48)
    assert d.statistic == pytest.approx(-7 / 18)
    assert (c.n, c.observed, c.p_value) == (2, 1, pytest.approx(7 / 16))
    assert rows["pop-a"].population.statistic == pytest.approx((3 - 13 / 6) / 3)
    assert (rows["pop-a"].population.p_value, rows["pop-b"].population.p_value) == (1.0, 1.0)
    assert rows["pop-b"].population.n == 3  # the skipped label counts nowhere
    assert [q.username for q in labelers_quality(project, sort="population")][:2] == ["pop-d", "pop-c"]


def test_drill_down_lists_the_disagreements_with_the_others_counts(project):
    """d's labels outside the majority, newest first, with the other labelers' answers in d's display order."""
    users, comparisons = _hand_world(project)
    detail = labeler_detail(project, labeler_id=users["d"].id)
    assert detail.disagreements_total == 2
    assert [x.comparison_id for x in detail.disagreements] == [comparisons[1].id, comparisons[0].id]
    c2 = detail.disagreements[0]
    assert (c2.chosen, c2.chosen_letter) == (2, "C")
    assert c2.others == [("A", 0, False), ("B", 2, False), ("C", 0, True), ("D", 0, False)]
    assert detail.disagreements[1].others == [("A", 3, False), ("B", 0, True), ("C", 0, False), ("D", 0, False)]
    assert {label.id for label in detail.labels if "population" in label.markers} == {
        x.label_id for x in detail.disagreements}
    assert detail.quality.population.p_value == pytest.approx(9 / 48)  # the same figure as the table's


def test_drill_down_letters_follow_the_labelers_display_order(project):
    """A label shown in reverse order: the others' counts are listed as that labeler saw the samples."""
    odd = UserFactory(username="pop-odd", role=CONTRACTOR)
    crowd = [UserFactory(username=f"pop-crowd{i}", role=CONTRACTOR) for i in range(3)]
    comparison = make_comparison(project, labels_wanted=4)
    for user in crowd:
        add_label(comparison, user, 0)
    add_label(comparison, odd, 3, display_order=[3, 2, 1, 0])
    [item] = labeler_detail(project, labeler_id=odd.id).disagreements
    assert item.chosen_letter == "A"
    assert item.others == [("A", 0, True), ("B", 0, False), ("C", 0, False), ("D", 3, False)]


MOODS = [
    " She laughed, hugged everyone and felt wonderfully happy.",
    " It was a horrible, miserable ending and he was furious.",
    " The bus arrived at noon.",
    " A lovely surprise: the best gift she had ever had.",
    " Everything went wrong; they were sad and afraid.",
    " He opened the window.",
    " What a great, joyful, beautiful morning it was!",
    " Nobody came, and the cold silence felt awful.",
]


@pytest.fixture
def simulated(project):
    """Five `sentiment` accounts (T = 0.1) and one `random` account label the same 40 comparisons (seeded)."""
    rng = random.Random(18)
    for _ in range(40):
        make_comparison(project, labels_wanted=6, texts=rng.sample(MOODS, project.k))
    labelers = simulated_labelers_ensure(project=project, specs=[LabelerSpec("sentiment", 5), LabelerSpec("random", 1)],
                                         seed=18)
    simulate_labeling(project=project, labelers=labelers)
    return {q.username: q for q in labelers_quality(project)}


def test_random_labeler_among_honest_ones_is_flagged(simulated):
    rand = simulated["sim-random-1"]
    assert rand.labels == 40
    assert rand.population.flagged(ALPHA)
    assert rand.population.p_value < 1e-6
    assert rand.population.statistic < -0.3
    assert "population" in rand.flags


def test_honest_labelers_are_not_flagged(simulated):
    honest = [q for name, q in simulated.items() if name.startswith("sim-sentiment-")]
    assert len(honest) == 5
    assert all(q.labels == 40 and q.population.n >= 20 for q in honest)  # the test had data to judge on
    assert all(not q.population.flagged(ALPHA) for q in honest)
    assert all(q.population.p_value > 0.1 for q in honest)
