"""Labelers who earn trust: the qualification set before the queue, gold checks in it, researchers'
actions on a standing (labeling/services/qualification.py), with simulated labelers."""
import random

import pytest
from django.db import connection, transaction

from labeling.errors import Conflict, Forbidden, InvalidInput
from labeling.models import (
    Assignment,
    Comparison,
    GoldAnswer,
    Label,
    LabelerStanding,
    QualificationAttempt,
    StandingChange,
)
from labeling.roles import CONTRACTOR, RESEARCHER
from labeling.scorers import score_sentiment
from labeling.selectors import labels_for_export
from labeling.selectors.qualification import labeler_standing_get, project_standings
from labeling.services import LabelInput, comparison_next_by_slug, comparison_next_for_labeler, label_submit
from labeling.services.qualification import (
    READING_CHARS_PER_SECOND,
    gold_mark,
    gold_mark_share,
    qualification_item_add,
    qualification_next,
    standing_act,
)
from labeling.services.simulation import (
    LabelerSpec,
    simulate_labeling,
    simulated_choice,
    simulated_labelers_ensure,
)
from tests.factories import ProjectFactory, UserFactory, make_comparison, make_label

pytestmark = pytest.mark.django_db

HAPPY = [
    " She laughed, hugged everyone and felt wonderfully happy.",
    " What a great, joyful, beautiful morning it was!",
    " A lovely surprise: the best gift she had ever had.",
    " They won, cheered and celebrated with delight.",
]
OTHER = [
    " It was a horrible, miserable ending and he was furious.",
    " Everything went wrong; they were sad and afraid.",
    " The bus arrived at noon.",
    " He opened the window.",
    " Nobody came, and the cold silence felt awful.",
    " The report was filed on Tuesday.",
]


def _answered(project, researcher, n, *, seed=0, calibration=True):
    """`n` comparisons of one happy text among K−1 others; the researcher chose the happy one."""
    rng = random.Random(seed)
    made = []
    for _ in range(n):
        texts = rng.sample(OTHER, project.k - 1)
        happy = rng.randrange(project.k)
        texts.insert(happy, rng.choice(HAPPY))
        comparison = make_comparison(project, is_calibration=calibration, texts=texts)
        if researcher is not None:
            make_label(comparison, researcher, chosen_index=happy)
        made.append(comparison)
    return made


def _qualify(project, labeler):
    """Answer the qualification set as the simulated labeler would, until it is out of items or attempts."""
    answered = 0
    while (assignment := qualification_next(project=project, labeler=labeler.user)) is not None:
        label, created = label_submit(assignment_id=assignment.id, labeler=labeler.user,
                                      answer=simulated_choice(labeler, assignment), now=assignment.leased_at
                                      + __import__("datetime").timedelta(minutes=1))
        assert created and label.feedback is not None and label.feedback.kind == "qualification"
        answered += 1
    return answered


@pytest.fixture
def trust_project(researcher):
    project = ProjectFactory(k=4, qualification_required=True, qualification_items=10, qualification_threshold=0.8)
    for comparison in _answered(project, researcher, 20, seed=1):
        qualification_item_add(project=project, comparison_id=comparison.id, note="The happy one.", by=researcher)
    return project


def test_researcher_answer_is_sentiment_argmax(trust_project):
    """The test data's premise: the happy text is the one VADER scores highest."""
    for gold in GoldAnswer.objects.filter(comparison__project=trust_project).select_related("comparison"):
        texts = [e.sample.text for e in gold.comparison.entries.select_related("sample").order_by("position")]
        scores = [score_sentiment(t) for t in texts]
        assert scores.index(max(scores)) == gold.chosen_index


def test_position_labeler_fails_qualification_and_honest_sentiment_passes(trust_project, hotpath):
    position, honest = simulated_labelers_ensure(
        project=trust_project, specs=[LabelerSpec("position", 1), LabelerSpec("sentiment", 1, temperature=0.1)])
    _qualify(trust_project, position)
    _qualify(trust_project, honest)

    position_attempts = list(QualificationAttempt.objects.filter(labeler=position.user).order_by("number"))
    assert [a.passed for a in position_attempts] == [False, False]  # 20 items: two attempts, both failed
    assert all(a.score < 0.8 for a in position_attempts)
    assert not labeler_standing_get(project=trust_project, labeler=position.user).admitted
    assert comparison_next_for_labeler(project=trust_project, labeler=position.user) is None

    honest_attempts = list(QualificationAttempt.objects.filter(labeler=honest.user))
    assert [a.passed for a in honest_attempts] == [True]
    assert honest_attempts[0].too_fast == 0
    assert labeler_standing_get(project=trust_project, labeler=honest.user).admitted


def test_qualification_items_never_enter_the_live_queue_nor_exports(trust_project, researcher, hotpath):
    ordinary = make_comparison(trust_project)
    labeler = UserFactory(username="q-live", role=CONTRACTOR)
    standing_act(project=trust_project, labeler=labeler, action="admit", reason="Known to us.", by=researcher)
    first = comparison_next_for_labeler(project=trust_project, labeler=labeler)
    assert first.comparison_id == ordinary.id or Comparison.objects.get(pk=first.comparison_id).is_calibration
    seen = set()
    assignment = first
    while assignment is not None:
        seen.add(assignment.comparison_id)
        label_submit(assignment_id=assignment.id, labeler=labeler, answer=LabelInput(position=0, duration_ms=10_000))
        assignment = comparison_next_for_labeler(project=trust_project, labeler=labeler)
    assert not Comparison.objects.filter(id__in=seen, is_qualification=True).exists()


def test_qualification_answers_are_left_out_of_exports_and_reward_fits(trust_project):
    from training.selectors.reward_fit import reward_fit_data

    labeler = UserFactory(username="q-export", role=CONTRACTOR)
    assignment = qualification_next(project=trust_project, labeler=labeler)
    label, _ = label_submit(assignment_id=assignment.id, labeler=labeler, answer=LabelInput(position=0, duration_ms=9000))
    ordinary = make_comparison(trust_project)
    make_label(ordinary, labeler, chosen_index=1)
    assert Label.objects.filter(pk=label.pk).exists()
    exported = set(labels_for_export(project=trust_project).values_list("comparison_id", flat=True))
    assert ordinary.id in exported and assignment.comparison_id not in exported
    data = reward_fit_data(project=trust_project, max_label_id=None)
    assert len(data.train) == 1  # the ordinary label; the 20 calibration originals are calibration
    assert sum(part["labels"] for part in data.report["parts"]) == Label.objects.filter(
        comparison__project=trust_project, comparison__is_qualification=False).count()


def test_a_qualification_item_cannot_be_skipped_nor_opened_to_the_queue(trust_project, hotpath):
    labeler = UserFactory(username="q-skip", role=CONTRACTOR)
    assignment = qualification_next(project=trust_project, labeler=labeler)
    with transaction.atomic(), pytest.raises(Conflict):
        with transaction.atomic():
            label_submit(assignment_id=assignment.id, labeler=labeler,
                         answer=LabelInput(position=None, skipped=True, skip_reason="hard", duration_ms=5000))
    assert not Label.objects.filter(assignment=assignment).exists()
    assert Comparison.objects.get(pk=assignment.comparison_id).open_slots == 0


def test_api_next_refuses_a_qualifying_labeler_with_the_reason(trust_project):
    labeler = UserFactory(username="q-api", role=CONTRACTOR)
    with pytest.raises(Forbidden, match="qualification"):
        comparison_next_by_slug(slug=trust_project.slug, labeler=labeler)


def test_retry_gets_unseen_items_and_runs_out(trust_project):
    labeler = UserFactory(username="q-retry", role=CONTRACTOR)
    seen = []
    while (assignment := qualification_next(project=trust_project, labeler=labeler)) is not None:
        seen.append(assignment.comparison_id)
        gold = GoldAnswer.objects.get(comparison_id=assignment.comparison_id)
        wrong = assignment.display_order.index((gold.chosen_index + 1) % 4)
        label_submit(assignment_id=assignment.id, labeler=labeler, answer=LabelInput(position=wrong, duration_ms=30_000))
    assert len(seen) == len(set(seen)) == 20
    assert QualificationAttempt.objects.filter(labeler=labeler, passed=False).count() == 2
    standing = LabelerStanding.objects.get(labeler=labeler)
    assert standing.status == "qualifying" and "0/10" in standing.reason


def test_an_attempt_answered_faster_than_reading_does_not_pass(trust_project):
    labeler = UserFactory(username="q-fast", role=CONTRACTOR)
    for _ in range(10):
        assignment = qualification_next(project=trust_project, labeler=labeler)
        gold = GoldAnswer.objects.get(comparison_id=assignment.comparison_id)
        label_submit(assignment_id=assignment.id, labeler=labeler,
                     answer=LabelInput(position=assignment.display_order.index(gold.chosen_index), duration_ms=300))
    attempt = QualificationAttempt.objects.get(labeler=labeler)
    assert (attempt.correct, attempt.too_fast, attempt.passed) == (10, 10, False)
    assert "faster than the texts can be read" in LabelerStanding.objects.get(labeler=labeler).reason


def test_reading_speed_is_the_too_fast_detectors():
    from labeling.selectors.quality.common import READING_CHARS_PER_SECOND as detector

    assert READING_CHARS_PER_SECOND == detector


def test_researcher_actions_keep_their_reasons_and_refuse_what_does_not_apply(trust_project, researcher):
    labeler = UserFactory(username="q-hand", role=CONTRACTOR)
    with pytest.raises(InvalidInput):
        standing_act(project=trust_project, labeler=labeler, action="admit", reason=" ", by=researcher)
    with pytest.raises(Conflict):
        standing_act(project=trust_project, labeler=labeler, action="resume", reason="x", by=researcher)
    qualification_next(project=trust_project, labeler=labeler)  # a qualification lease, withdrawn on admit
    standing_act(project=trust_project, labeler=labeler, action="admit", reason="Worked with us before.", by=researcher)
    assert not Assignment.objects.filter(labeler=labeler, state=Assignment.State.LEASED).exists()
    standing_act(project=trust_project, labeler=labeler, action="revoke", reason="Copied answers.", by=researcher)
    assert comparison_next_for_labeler(project=trust_project, labeler=labeler) is None
    standing_act(project=trust_project, labeler=labeler, action="send_back", reason="One more chance.", by=researcher)
    changes = list(StandingChange.objects.filter(standing__labeler=labeler).values_list("status", "reason",
                                                                                        "changed_by__username"))
    assert changes == [("qualified", "Worked with us before.", "researcher1"),
                       ("revoked", "Copied answers.", "researcher1"),
                       ("qualifying", "One more chance.", "researcher1")]
    [row] = project_standings(project=trust_project)
    assert (row.username, row.status, len(row.changes)) == ("q-hand", "qualifying", 3)


# ---------------------------------------------------------------- gold in the live queue


@pytest.fixture
def gold_project(researcher):
    project = ProjectFactory(k=4, calibration_share=0.3, gold_share=1.0, gold_accuracy_threshold=0.7, gold_window=50)
    _answered(project, researcher, 40, seed=2)
    _answered(project, None, 260, seed=3, calibration=False)
    assert gold_mark_share(project=project, by=researcher) == 40
    return project


def test_gold_mark_share_marks_that_share_and_opens_them_to_everyone(researcher):
    project = ProjectFactory(k=2, gold_share=0.5)
    _answered(project, researcher, 4)
    _answered(project, None, 2)  # calibration without a researchers' answer: never gold
    assert gold_mark_share(project=project, by=researcher) == 2
    assert gold_mark_share(project=project, by=researcher) == 0
    gold = Comparison.objects.filter(gold_answer__isnull=False)
    assert gold.count() == 2 and all(c.labels_wanted == c.open_slots == 32767 for c in gold)  # make_label counts nothing
    unanswered = Comparison.objects.filter(project=project, labels__isnull=True).first()
    with pytest.raises(InvalidInput):
        gold_mark(project=project, comparison_id=unanswered.id)


def test_random_labeler_is_paused_within_100_labels(gold_project, hotpath):
    [labeler] = simulated_labelers_ensure(project=gold_project, specs=[LabelerSpec("random", 1)])
    counts = simulate_labeling(project=gold_project, labelers=[labeler], n=100)
    standing = LabelerStanding.objects.get(labeler=labeler.user)
    assert standing.status == "paused"
    assert counts.labeled < 100 and counts.exhausted == [labeler.user.username]
    assert "Gold accuracy" in standing.reason
    assert comparison_next_for_labeler(project=gold_project, labeler=labeler.user) is None
    with pytest.raises(Forbidden, match="paused"):
        comparison_next_by_slug(slug=gold_project.slug, labeler=labeler.user)
    [row] = project_standings(project=gold_project)
    assert row.status == "paused" and row.gold_interval[1] < 0.7


def test_resume_starts_a_fresh_gold_window(gold_project, researcher):
    [labeler] = simulated_labelers_ensure(project=gold_project, specs=[LabelerSpec("random", 1)])
    simulate_labeling(project=gold_project, labelers=[labeler], n=100)
    standing_act(project=gold_project, labeler=labeler.user, action="resume", reason="Talked it over.", by=researcher)
    standing = LabelerStanding.objects.get(labeler=labeler.user)
    assert (standing.status, standing.gold_answered) == ("qualified", 0)
    assert comparison_next_for_labeler(project=gold_project, labeler=labeler.user) is not None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="1,000 labels: PostgreSQL's SQL path")
def test_honest_labeler_is_not_paused_in_1000_labels(researcher):
    project = ProjectFactory(k=4, calibration_share=0.1, gold_share=1.0, gold_accuracy_threshold=0.7)
    _answered(project, researcher, 130, seed=4)
    _answered(project, None, 900, seed=5, calibration=False)
    gold_mark_share(project=project, by=researcher)
    [labeler] = simulated_labelers_ensure(project=project, specs=[LabelerSpec("sentiment", 1, temperature=0.1)])
    counts = simulate_labeling(project=project, labelers=[labeler], n=1000)
    standing = LabelerStanding.objects.get(labeler=labeler.user)
    assert counts.labeled == 1000
    assert standing.status == "qualified"
    assert standing.gold_answered >= 50 and standing.gold_correct / standing.gold_answered > 0.9


def test_gold_feedback_is_returned_only_when_the_project_shows_it(researcher, hotpath):
    project = ProjectFactory(k=2, calibration_share=1.0, gold_share=1.0, gold_feedback=True)
    _answered(project, researcher, 2)
    gold_mark_share(project=project, by=researcher)
    labeler = UserFactory(username="g-feedback", role=CONTRACTOR)
    assignment = comparison_next_for_labeler(project=project, labeler=labeler)
    label, _ = label_submit(assignment_id=assignment.id, labeler=labeler, answer=LabelInput(position=0, duration_ms=9000))
    assert label.feedback.kind == "gold" and label.feedback.chosen_position == 0
    project.gold_feedback = False
    project.save()
    assignment = comparison_next_for_labeler(project=project, labeler=labeler)
    label, _ = label_submit(assignment_id=assignment.id, labeler=labeler, answer=LabelInput(position=0, duration_ms=9000))
    assert label.feedback is None
    assert LabelerStanding.objects.get(labeler=labeler).gold_answered == 2
