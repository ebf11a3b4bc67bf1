"""The demo speaks words: its projects start from the pretrained demo base, so a round with the demo's
simulated labelers publishes readable comparisons and tunes a policy the labelers' scorer prefers."""
import re
import time

import pytest
import torch
from django.contrib.auth import get_user_model

from labeling.models import Comparison, Project, Sample
from labeling.scorers import score_sentiment
from labeling.services.demo import demo_autolabel, demo_seed
from training.models import Round, TrainingRun
from training.rlhf import evaluate as ev
from training.rlhf.models import load_lm, load_policy
from training.services.demo_base import DEMO_CORPUS, demo_base_ensure
from training.services.models_io import final_checkpoint
from training.services.rounds import round_start

pytestmark = [pytest.mark.slow, pytest.mark.worker]
BASE_STEPS = 1000  # the demo builds 2,000 steps; half keeps this test near two minutes of CPU
EVAL_ROWS = 240  # the 15 demo contexts, 16 times each


def _printable_share(texts: list[str]) -> float:
    chars = "".join(texts)
    return sum(c.isprintable() or c in "\n\t" for c in chars) / max(1, len(chars))


def _wait_round(rnd: Round, timeout: float = 600) -> Round:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rnd.refresh_from_db()
        if rnd.status != Round.Status.RUNNING:
            return rnd
        time.sleep(0.5)
    raise AssertionError("the round did not end in time")


def test_a_demo_round_publishes_words_and_tunes_towards_the_labelers(django_db_reset_sequences, live_worker):
    # Ids restart at 1: the simulated answers are seeded by comparison ids (as in test_experiment.py).
    live_worker.start()
    lines: list[str] = []
    base_dir = demo_base_ensure(steps=BASE_STEPS, log=lines.append)
    assert demo_base_ensure(steps=BASE_STEPS, log=lines.append) == base_dir and lines[-1].startswith(
        "Demo base model: reusing")
    demo_seed(base_model=str(base_dir))
    project = Project.objects.get(slug="positive-continuations")
    assert project.training_settings["base_model"] == str(base_dir)
    assert demo_autolabel(project=project) == 40

    rnd = _wait_round(round_start(project=project, user=get_user_model().objects.get(username="researcher")))
    runs = {r.kind: r for r in rnd.runs.all()}
    assert rnd.status == Round.Status.FINISHED, {k: (r.status, r.error[-500:], r.stop_reason) for k, r in runs.items()}
    assert all(r.base_model == str(base_dir) for r in runs.values())

    # The published comparisons are text: printable, in the base corpus's words.
    published = Comparison.objects.filter(source_run=runs[TrainingRun.Kind.SAMPLE])
    texts = list(Sample.objects.filter(comparisons__in=published).values_list("text", flat=True).distinct())
    assert published.count() >= 10 and len(texts) >= 30
    assert _printable_share(texts) >= 0.9
    vocabulary = set(re.findall(r"[a-z]{3,}", DEMO_CORPUS.read_text().lower()))
    words = [w for t in texts for w in re.findall(r"[a-z]{3,}", t.lower())]
    assert sum(w in vocabulary for w in words) >= 0.6 * len(words)  # byte noise: almost none
    assert sum(any(w in vocabulary for w in re.findall(r"[a-z]{3,}", t.lower())) for t in texts) >= 0.8 * len(texts)

    # The round's policy writes what the simulated sentiment labelers prefer, more than the base does.
    task = rnd.runs.get(kind=TrainingRun.Kind.PPO).config
    gen = {"query_length": task["query_length"], "response_length": task["response_length"],
           "temperature": task["temperature"]}
    contexts = list(project.queries.order_by("id").values_list("context", flat=True))
    queries = [contexts[i % len(contexts)] for i in range(EVAL_ROWS)]
    base, tokenizer = load_lm(base_dir)
    policy, _ = load_policy(final_checkpoint(runs[TrainingRun.Kind.PPO]).path)
    with torch.no_grad():
        base_samples = ev.sample_responses(base.eval(), tokenizer, queries, seed=300, **gen)
        base_scores = ev.score_texts(score_sentiment, base_samples.texts, queries)
        tuned, _ = ev.evaluate_policy(policy.eval(), base, tokenizer, queries, base_scores, score_sentiment,
                                      seed=400, **gen)
    assert _printable_share(base_samples.texts) >= 0.9
    # Measured: 0.080 against 0.007 (VADER compound, 240 samples each; the standard error of the difference
    # is about 0.03), at a KL of 6 nats.
    assert tuned["mean_score"] > base_scores.mean().item()
    assert tuned["kl"] > 0
