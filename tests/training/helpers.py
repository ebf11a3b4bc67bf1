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




def cord_scenario(project, labeler, *, n=3):
    """Round 1 finished: fit → PPO with a final checkpoint on disk → a sample run that published `n` comparisons
    (two labels wanted) of that checkpoint, the first labeled once by `labeler` (partly labeled). Round 2 running
    on a label snapshot that holds that label: its fit claimed by a worker, its PPO and sample run waiting."""
    from django.conf import settings
    from django.utils import timezone

    from labeling.models import Comparison
    from training.models import BASE_POLICY_SOURCE, Checkpoint, Round, TrainingRun
    from training.services import run_claim

    Status = TrainingRun.Status
    done = {"status": Status.FINISHED, "finished_at": timezone.now()}
    round1 = Round.objects.create(project=project, number=1, status=Round.Status.FINISHED)
    fit1 = TrainingRun.objects.create(project=project, round=round1, kind="fit_reward", base_model="tiny", **done)
    ppo1 = TrainingRun.objects.create(project=project, round=round1, kind="ppo", base_model="tiny", reward_run=fit1,
                                      **done)
    folder = settings.ARTIFACTS_DIR / "runs" / f"run-{ppo1.id}" / "checkpoints" / "step-3"
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"w")
    checkpoint = Checkpoint.objects.create(run=ppo1, step=3, path=str(folder), sha256="0" * 64, is_final=True)
    sample1 = TrainingRun.objects.create(project=project, round=round1, kind="sample", base_model="tiny",
                                         policy_run=ppo1, **done)
    comparisons = []
    for i in range(n):
        query = Query.objects.create(project=project, context=f"cord query {i} ")
        sources = [checkpoint.name] * (project.k - project.k // 2) + [BASE_POLICY_SOURCE] * (project.k // 2)
        samples = [Sample.objects.create(query=query, text=f"text {i}.{j}", source=s) for j, s in enumerate(sources)]
        comparisons.append(comparison_create(project=project, query=query, samples=samples, labels_wanted=2,
                                             batch=f"run{sample1.id}"))
    Comparison.objects.filter(id__in=[c.id for c in comparisons]).update(source_run=sample1)
    assignment = comparison_next_for_labeler(project=project, labeler=labeler)
    label, _ = label_submit(assignment_id=assignment.id, labeler=labeler,
                            answer=LabelInput(position=0, duration_ms=900))
    round2 = Round.objects.create(project=project, number=2, label_snapshot={"max_label_id": label.id, "count": 1})
    fit2 = TrainingRun.objects.create(project=project, round=round2, kind="fit_reward", base_model="tiny",
                                      config=dict(FAST_TASK), product={"label_snapshot": round2.label_snapshot})
    ppo2 = TrainingRun.objects.create(project=project, round=round2, kind="ppo", base_model="tiny", reward_run=fit2)
    sample2 = TrainingRun.objects.create(project=project, round=round2, kind="sample", base_model="tiny",
                                         policy_run=ppo2)
    run_claim(run_id=fit2.id, owner="w1")
    return {"ppo1": ppo1, "checkpoint": checkpoint, "sample1": sample1, "comparisons": comparisons,
            "labeled": assignment.comparison, "round2": round2, "next_runs": [fit2, ppo2, sample2]}
