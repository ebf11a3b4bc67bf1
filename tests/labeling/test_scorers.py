"""Simulated labelers' scorers and softmax chooser (pure Python: no database)."""
import math
import random
from collections import Counter

import pytest

from labeling.scorers import (
    KINDS,
    SCORERS,
    reading_time_ms,
    score_copy,
    score_length,
    score_sentiment,
    scores_for,
    softmax_choice,
    softmax_probabilities,
)

POSITIVE = "What a wonderful day: she laughed, hugged her friends and felt truly happy."
NEGATIVE = "It was a horrible, miserable night; he felt hopeless, angry and afraid."
NEUTRAL = "The train leaves the station at seven."


# ---------------------------------------------------------------- scorers


def test_vader_scores_a_positive_sentence_above_a_negative_one():
    assert score_sentiment(POSITIVE) > 0.5 > score_sentiment(NEUTRAL) > -0.5 > score_sentiment(NEGATIVE)
    assert -1.0 <= score_sentiment(NEGATIVE) and score_sentiment(POSITIVE) <= 1.0


def test_length_counts_trimmed_characters():
    assert score_length("  abc  ") == 3.0
    assert score_length("a longer text") > score_length("short")


def test_copy_prefers_the_text_repeating_the_context():
    context = "The committee approved the new budget for the city library on Monday evening."
    copied = "The committee approved the new budget for the city library."
    fresh = "Money for books was agreed after a long debate."
    assert score_copy(copied, context) == 1.0
    assert score_copy(fresh, context) == 0.0
    assert 0 < score_copy("The committee approved a very different plan today.", context) < 1


def test_registry_is_a_plain_dict_of_the_text_scorers():
    assert SCORERS == {"sentiment": score_sentiment, "length": score_length, "copy": score_copy}
    assert set(KINDS) == {"sentiment", "length", "copy", "position", "random"}


def test_scores_for_normalises_by_the_kinds_scale():
    texts = ["x" * 50, "x" * 250]
    assert scores_for("length", context="", texts=texts) == [0.5, 2.5]
    assert scores_for("position", context="", texts=["a", "b", "c"]) == [1.0, 0.5, 0.0]
    assert scores_for("random", context="", texts=["a", "b"]) == [0.0, 0.0]
    assert scores_for("sentiment", context="", texts=[POSITIVE]) == [score_sentiment(POSITIVE)]
    with pytest.raises(ValueError, match="Unknown simulated labeler kind"):
        scores_for("grumpy", context="", texts=["a"])


# ---------------------------------------------------------------- chooser


def test_temperature_zero_always_picks_the_argmax():
    rng = random.Random(1)
    assert {softmax_choice([0.1, 0.9, 0.3, 0.8], 0, rng) for _ in range(200)} == {1}


def test_temperature_zero_breaks_ties_at_random_with_the_labelers_rng():
    picks = Counter(softmax_choice([0.5, 0.2, 0.5, 0.5], 0, random.Random(s)) for s in range(600))
    assert set(picks) == {0, 2, 3}
    assert all(150 < picks[i] < 250 for i in (0, 2, 3))
    assert softmax_probabilities([0.5, 0.2, 0.5, 0.5], 0) == pytest.approx([1 / 3, 0, 1 / 3, 1 / 3])


def test_a_moderate_temperature_picks_the_best_most_often_but_not_always():
    rng = random.Random(7)
    picks = Counter(softmax_choice([1.0, 0.8, 0.6, 0.4], 0.2, rng) for _ in range(2000))
    assert picks.most_common(1)[0][0] == 0
    assert picks[0] < 2000 and picks[1] > 0


@pytest.mark.parametrize("temperature", [0.05, 0.3, 1.0, 10.0])
def test_choice_frequencies_match_the_softmax(temperature):
    scores = [0.9, 0.7, 0.2, -0.4]
    probs = softmax_probabilities(scores, temperature)
    expected = [math.exp(s / temperature) for s in scores]
    assert probs == pytest.approx([e / sum(expected) for e in expected])
    draws = 20_000
    rng = random.Random(2019)
    picks = Counter(softmax_choice(scores, temperature, rng) for _ in range(draws))
    for i, p in enumerate(probs):
        # Four standard errors (plus a floor for tiny p): fails about once in 15,000 runs by chance.
        assert abs(picks[i] / draws - p) <= 4 * math.sqrt(p * (1 - p) / draws) + 1e-3, (i, picks, probs)


def test_same_seed_same_choices_and_huge_scores_do_not_overflow():
    scores = [1000.0, 999.0, -1000.0]
    a = [softmax_choice(scores, 0.01, random.Random(3)) for _ in range(5)]
    b = [softmax_choice(scores, 0.01, random.Random(3)) for _ in range(5)]
    assert a == b
    assert softmax_probabilities(scores, 0.01)[0] == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_temperatures_are_refused(bad):
    with pytest.raises(ValueError):
        softmax_choice([1.0, 0.0], bad, random.Random(0))
    with pytest.raises(ValueError):
        softmax_probabilities([1.0, 0.0], bad)


def test_reading_time_grows_with_the_text_and_stays_plausible():
    short = [reading_time_ms(["Yes.", "No."], random.Random(s)) for s in range(100)]
    long = [reading_time_ms(["word " * 200, "word " * 200], random.Random(s)) for s in range(100)]
    assert min(short) >= 500 and sum(long) > 5 * sum(short)
    assert len(set(short)) > 50  # noisy, not a constant


def test_scorers_import_without_django():
    """The experiment code imports the scorers outside Django: a fresh interpreter loads no Django."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, labeling.scorers as s; s.score_sentiment('good'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'rest_framework', 'celery'}))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
