"""Shared builders for the training tests."""
import random

from labeling.models import ComparisonSample, Query, Sample
from labeling.services import LabelInput, comparison_create, comparison_next_for_labeler, label_submit
from tests.factories import ProjectFactory

# One task definition for all three (training/services/task.py): 16-token queries, 8-token responses.
FAST_TASK = {"query_length": 16, "response_length": 8, "temperature": 1.0, "truncate_after": 0}
FAST_REWARD = {"epochs": 6, "lr": 1e-3, "batch_size": 16, "normalize_samples": 16, "valid_fraction": 0.2,
               "log_every": 5, **FAST_TASK}
FAST_PPO = {"total_episodes": 48, "batch_size": 16, "save_every": 1, "lr": 1e-4, **FAST_TASK}
FAST_SAMPLE = {"n_queries": 5, **FAST_TASK}


def labeled_project(contractor, researcher, *, n=96, n_calibration=12, researcher_flips=False):
    """K=2 comparisons; the better sample has more 'z'. Researchers label the calibration slice."""
    rng = random.Random(0)
    project = ProjectFactory(k=2, calibration_share=0.0)
    for i in range(n + n_calibration):
        query = Query.objects.create(project=project, context=f"q{i} ")
        good = "z" * rng.randint(6, 12) + "a" * rng.randint(0, 4)
        bad = "a" * rng.randint(6, 12) + "z" * rng.randint(0, 2)
        pair = [good, bad] if rng.random() < 0.5 else [bad, good]
        samples = [Sample.objects.create(query=query, text=t, source="test") for t in pair]
        comparison_create(project=project, query=query, samples=samples, is_calibration=i >= n)
    for labeler, calibration in ((contractor, False), (researcher, True)):
        while (assignment := comparison_next_for_labeler(project=project, labeler=labeler)) is not None:
            if assignment.comparison.is_calibration != calibration:
                break
            texts = [ComparisonSample.objects.get(comparison=assignment.comparison, position=p).sample.text
                     for p in assignment.display_order]
            best = max(range(2), key=lambda p: texts[p].count("z"))
            if calibration and researcher_flips:
                best = 1 - best
            label_submit(assignment_id=assignment.id, labeler=labeler, answer=LabelInput(position=best, duration_ms=900))
    return project


