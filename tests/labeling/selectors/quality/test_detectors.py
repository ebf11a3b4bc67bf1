"""Shortcut detectors on simulated labelers with a fixed seed: the cheats are flagged within 200 labels,
the honest noisy labeler is not (p < 0.01)."""
import random

import pytest

from labeling.roles import CONTRACTOR
from labeling.selectors.quality import ALPHA, labeler_detail, labelers_quality, dashboard_cache_clear
from labeling.textstats import copy_overlap
from labeling.services import comparison_create
from tests.factories import QueryFactory, SampleFactory, UserFactory
from tests.labeling.quality_helpers import add_label

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("dashboard_path")]

N = 200
VOCABULARY = [f"w{i}" for i in range(300)]


def _texts(rng: random.Random, context_words: list[str], k: int) -> list[str]:
    """K samples: each copies a span of random length from the context, then adds fresh words; lengths vary independently."""
    texts = []
    for _ in range(k):
        copied = rng.randint(0, 12)
        start = rng.randint(0, len(context_words) - copied)
        fresh = [rng.choice(VOCABULARY) for _ in range(rng.randint(4, 20))]
        texts.append(" " + " ".join(context_words[start: start + copied] + fresh))
    return texts


@pytest.fixture
def simulated(project):
    """Four labelers answer the same 200 comparisons: honest-but-noisy, copier, position-A, and too fast."""
    dashboard_cache_clear()
    rng = random.Random(20190918)
    users = {name: UserFactory(username=name, role=CONTRACTOR) for name in ("honest", "copier", "first", "hasty")}
    for _ in range(N):
        context_words = [rng.choice(VOCABULARY) for _ in range(40)]
        texts = _texts(rng, context_words, project.k)
        context = "Story: " + " ".join(context_words)
        query = QueryFactory(project=project, context=context)
        samples = [SampleFactory(query=query, text=t) for t in texts]
        comparison = comparison_create(project=project, query=query, samples=samples, labels_wanted=4)
        quality = [rng.random() for _ in texts]  # the hidden "true" preference: unrelated to copying or length
        overlaps = [copy_overlap(context, t) for t in texts]
        for name, user in users.items():
            order = list(range(project.k))
            rng.shuffle(order)
            best = max(range(project.k), key=quality.__getitem__)
            honest_choice = best if rng.random() < 0.7 else rng.randrange(project.k)
            choice = {
                "honest": honest_choice,
                "copier": max(range(project.k), key=overlaps.__getitem__),
                "first": order[0],
                "hasty": honest_choice,
            }[name]
            add_label(comparison, user, choice, display_order=order, duration_ms=500 if name == "hasty" else 40000)
    return {q.username: q for q in labelers_quality(project)}


def test_copy_preference_is_flagged_within_200_labels(simulated):
    copier = simulated["copier"]
    assert copier.labels == N
    assert copier.copy.flagged(ALPHA)
    assert copier.copy.p_value < 1e-6
    assert "copy" in copier.flags


def test_position_bias_is_flagged_within_200_labels(simulated):
    first = simulated["first"]
    assert first.position.flagged(ALPHA)
    # by screen position is at random as to content: unlike the others, so the population test flags it too
    assert first.flags == ["position", "population"]


def test_too_fast_labeler_is_flagged(simulated):
    assert simulated["hasty"].too_fast.flagged(ALPHA)
    assert simulated["hasty"].too_fast.statistic == 1.0


def test_honest_noisy_labeler_is_not_flagged(simulated):
    honest = simulated["honest"]
    assert honest.flags == []
    assert all(test.n > 150 for test in honest.detector_results)  # the tests had data to judge on
    assert honest.copy.p_value > ALPHA and honest.position.p_value > ALPHA and honest.length.p_value > ALPHA


def test_detector_hits_are_the_labels_behind_them(simulated, project):
    """The drill-down names the labels behind each detector: every copier label picked the most copying sample."""
    copier = labeler_detail(project, labeler_id=simulated["copier"].labeler_id, limit=5).quality
    assert len(copier.hits["copy"]) == copier.copy.observed == copier.copy.n
    hasty = labeler_detail(project, labeler_id=simulated["hasty"].labeler_id, limit=5)
    assert len(hasty.quality.hits["too_fast"]) == N
    assert all("too_fast" in label.markers for label in hasty.labels)
