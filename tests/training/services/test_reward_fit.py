"""The fit_reward run on real labels, and the sign-flip tripwire on researchers' calibration answers."""
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from labeling.models import Comparison, Query, Sample
from labeling.roles import RESEARCHER
from labeling.services import comparison_create
from training.models import BASE_POLICY_SOURCE, AndonPull, Checkpoint, RunMetric, TrainingRun
from training.rlhf.config import ConfigError
from training.rlhf.export import HF_SEQUENCE_CLASSIFICATION_DIR
from training.rlhf.models import RewardModel
from training.selectors import base_policy_sample_pairs
from training.services.execute import run_execute
from training.services.reward_fit import reward_fit_config
from training.services.rounds import round_configs
from tests.factories import ProjectFactory, TrainingRunFactory, UserFactory
from tests.training.helpers import FAST_REWARD, labeled_project

pytestmark = pytest.mark.django_db
Status = TrainingRun.Status


@pytest.mark.slow
def test_fit_reward_run_learns_the_labels_and_saves_a_checkpoint(contractor):
    researcher = UserFactory(username="r-fit", role=RESEARCHER)
    project = labeled_project(contractor, researcher)
    run = TrainingRunFactory(project=project, kind="fit_reward", seed=1, config=FAST_REWARD)
    assert run_execute(run_id=run.id) == Status.FINISHED
    metrics = dict(RunMetric.objects.filter(run=run).values_list("key", "value"))
    assert metrics["valid/accuracy"] >= 0.8
    assert metrics["calibration/accuracy"] >= 0.8
    assert "normalization/gain" in metrics
    assert metrics["normalization_before/samples"] == FAST_REWARD["normalize_samples"]  # rho sampled afresh
    checkpoint = Checkpoint.objects.get(run=run)
    assert checkpoint.is_final and len(checkpoint.sha256) == 64
    assert not AndonPull.objects.exists()
    # Standard formats out: the same folder holds the model as AutoModelForSequenceClassification loads it.
    export = Path(checkpoint.path) / HF_SEQUENCE_CLASSIFICATION_DIR
    run.refresh_from_db()
    assert run.report["hf_sequence_classification"] == str(export)
    classifier = AutoModelForSequenceClassification.from_pretrained(export)
    batch = AutoTokenizer.from_pretrained(export)(["q1 zzzzzzz", "q2 a"], padding=True, return_tensors="pt")
    model, _ = RewardModel.from_pretrained(checkpoint.path)
    with torch.no_grad():
        ours = model(batch["input_ids"], batch["attention_mask"])
        torch.testing.assert_close(classifier(**batch).logits[:, 0], ours, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_reward_that_disagrees_with_researchers_pulls_the_cord(contractor):
    researcher = UserFactory(username="r-flip", role=RESEARCHER)
    project = labeled_project(contractor, researcher, researcher_flips=True)
    run = TrainingRunFactory(project=project, kind="fit_reward", seed=1, config=FAST_REWARD)
    assert run_execute(run_id=run.id) == Status.STOPPED
    pull = AndonPull.objects.get(run=run)
    assert pull.tripwire == "reward_sign" and pull.role == "tripwire" and "calibration" in pull.reason
    assert Comparison.objects.filter(project=project).count() == 108


def add_base_policy_comparisons(project, *, base_model: str, n: int, prefix: str = "b") -> list[tuple[str, str]]:
    """n/2 K=2 comparisons published by a sample run of `base_model`, both slots written by rho."""
    sample_run = TrainingRunFactory(project=project, kind="sample", base_model=base_model)
    pairs = []
    for i in range(n // 2):
        query = Query.objects.create(project=project, context=f"{prefix}{i} ")
        texts = [f"{'z' * (i % 5)}rho {j}" for j in range(2)]
        samples = [Sample.objects.create(query=query, text=t, source=BASE_POLICY_SOURCE) for t in texts]
        comparison = comparison_create(project=project, query=query, samples=samples, batch=f"{prefix}-base")
        Comparison.objects.filter(id=comparison.id).update(source_run=sample_run)
        pairs += [(query.context, t) for t in texts]
    return pairs


def test_base_policy_sample_pairs_are_rhos_stored_samples_for_that_base_model():
    project = ProjectFactory(k=2)
    tiny = add_base_policy_comparisons(project, base_model="tiny", n=6)
    add_base_policy_comparisons(project, base_model="other-model", n=4, prefix="o")
    add_base_policy_comparisons(ProjectFactory(k=2), base_model="tiny", n=4)
    query = Query.objects.create(project=project, context="p ")
    policy = [Sample.objects.create(query=query, text=t, source="run9-step5") for t in ("x", "y")]
    comparison_create(project=project, query=query, samples=policy)
    assert base_policy_sample_pairs(project=project, base_model="tiny", limit=100) == tiny
    assert base_policy_sample_pairs(project=project, base_model="tiny", limit=4) == tiny[:4]


@pytest.mark.slow
def test_fit_reward_run_normalises_before_training_on_stored_base_policy_samples(contractor):
    researcher = UserFactory(username="r-base", role=RESEARCHER)
    project = labeled_project(contractor, researcher)
    add_base_policy_comparisons(project, base_model="tiny", n=40)
    run = TrainingRunFactory(project=project, kind="fit_reward", seed=1,
                             config={**FAST_REWARD, "normalize_samples": 48})
    assert run_execute(run_id=run.id) == Status.FINISHED
    metrics = dict(RunMetric.objects.filter(run=run).values_list("key", "value"))
    assert metrics["normalization_before/samples"] == 40  # the stored ones, not 48 fresh samples
    assert metrics["valid/accuracy"] >= 0.8


def test_project_reward_settings_choose_the_reward_readout():
    """training_settings "reward" keys reach RewardFitConfig through the round's run config."""
    project = ProjectFactory(training_settings={"reward": {"readout": "mean"}})
    run = TrainingRunFactory(project=project, kind="fit_reward", config=round_configs(project)["reward"])
    assert reward_fit_config(run).readout == "mean"
    assert reward_fit_config(TrainingRunFactory(project=ProjectFactory(), kind="fit_reward")).readout == "last"
    bad = TrainingRunFactory(project=project, kind="fit_reward", config={"readout": "first"})
    with pytest.raises(ConfigError, match="readout"):
        reward_fit_config(bad)


@pytest.mark.slow
def test_fit_reward_run_with_mean_readout_learns_and_saves_the_readout(contractor):
    researcher = UserFactory(username="r-mean", role=RESEARCHER)
    project = labeled_project(contractor, researcher)
    project.training_settings = {"reward": {**FAST_REWARD, "readout": "mean"}}
    project.save(update_fields=["training_settings"])
    run = TrainingRunFactory(project=project, kind="fit_reward", seed=1, config=round_configs(project)["reward"])
    assert run_execute(run_id=run.id) == Status.FINISHED
    metrics = dict(RunMetric.objects.filter(run=run).values_list("key", "value"))
    assert metrics["valid/accuracy"] >= 0.8
    model, _ = RewardModel.from_pretrained(Checkpoint.objects.get(run=run).path)
    assert model.readout == "mean"
    run.refresh_from_db()  # a mean readout has no exact sequence-classification form: skipped, and said so
    assert run.report["hf_sequence_classification"].startswith("skipped: readout 'mean'")
    assert not (Path(Checkpoint.objects.get(run=run).path) / HF_SEQUENCE_CLASSIFICATION_DIR).exists()


def split_project(contractor, researcher, other, *, n=48, n_calibration=8, n_valid=12, n_test=6):
    """labeled_project, then: the first `n_valid` ordinary comparisons move to the valid split, the next
    `n_test` to test, one calibration comparison to valid; `other` adds a skipped train label, a label on
    a calibration comparison and, after the snapshot, one more train label. Returns (project, snapshot)."""
    from django.db.models import Max

    from labeling.models import Label
    from tests.factories import make_label

    project = labeled_project(contractor, researcher, n=n, n_calibration=n_calibration)
    ordinary = list(Comparison.objects.filter(project=project, is_calibration=False).order_by("id"))
    calibration = list(Comparison.objects.filter(project=project, is_calibration=True).order_by("id"))
    Query.objects.filter(comparisons__in=ordinary[:n_valid]).update(split=Query.Split.VALID)
    Query.objects.filter(comparisons__in=ordinary[n_valid:n_valid + n_test]).update(split=Query.Split.TEST)
    Query.objects.filter(comparisons=calibration[0]).update(split=Query.Split.VALID)
    make_label(ordinary[-1], other, chosen_index=None, skip_reason="unclear")
    make_label(calibration[1], other, chosen_index=0)
    snapshot = Label.objects.filter(comparison__project=project, skipped=False).aggregate(max_label_id=Max("id"))
    make_label(ordinary[-2], other, chosen_index=1)  # after the snapshot
    return project, snapshot


def spy_on_fit(monkeypatch) -> list:
    """The library fit still runs; each call's training records are kept."""
    import training.services.reward_fit as service

    calls, real = [], service.fit

    def spy(config, comparisons, **kwargs):
        calls.append(list(comparisons))
        return real(config, comparisons, **kwargs)

    monkeypatch.setattr(service, "fit", spy)
    return calls


@pytest.mark.slow
def test_fit_trains_on_train_split_labels_only_and_measures_the_valid_split(contractor, other_contractor,
                                                                             monkeypatch):
    from labeling.models import Label

    researcher = UserFactory(username="r-split", role=RESEARCHER)
    project, snapshot = split_project(contractor, researcher, other_contractor)
    calls = spy_on_fit(monkeypatch)
    run = TrainingRunFactory(project=project, kind="fit_reward", seed=1, config=FAST_REWARD,
                             product={"label_snapshot": snapshot})
    assert run_execute(run_id=run.id) == Status.FINISHED

    in_snapshot = Label.objects.filter(comparison__project=project, skipped=False, id__lte=snapshot["max_label_id"])
    train = in_snapshot.filter(comparison__is_calibration=False, comparison__query__split="train")
    (trained,) = calls
    assert len(trained) == train.count() == 48 - 12 - 6
    assert {record.group for record in trained} == set(train.values_list("comparison_id", flat=True))
    left_out = set(Comparison.objects.filter(project=project).exclude(query__split="train")
                   .values_list("id", flat=True))
    left_out |= set(Comparison.objects.filter(project=project, is_calibration=True).values_list("id", flat=True))
    assert not {record.group for record in trained} & left_out  # no calibration, valid or test label trained on

    metrics = dict(RunMetric.objects.filter(run=run).values_list("key", "value"))
    assert metrics["reward/valid_labels"] == 12 and metrics["reward/valid_accuracy"] >= 0.7
    assert metrics["calibration/labels"] == 8
    parts = {p["part"]: p for p in TrainingRun.objects.get(id=run.id).report["reward_data"]["parts"]}
    assert parts["train"] | {"use": ""} == {"part": "train", "use": "", "comparisons": 30, "labels": 30,
                                            "skipped": 1, "after_snapshot": 1}
    assert (parts["valid"]["labels"], parts["test"]["labels"], parts["calibration"]["labels"]) == (12, 6, 9)
    assert parts["calibration"]["comparisons"] == 8 and parts["valid"]["use"].startswith("held-out")


def test_fit_without_train_split_labels_fails_and_says_what_it_left_out(contractor):
    researcher = UserFactory(username="r-none", role=RESEARCHER)
    project = labeled_project(contractor, researcher, n=6, n_calibration=2)
    Query.objects.filter(project=project).update(split=Query.Split.VALID)
    run = TrainingRunFactory(project=project, kind="fit_reward", seed=1, config=FAST_REWARD)
    assert run_execute(run_id=run.id) == Status.FAILED
    run.refresh_from_db()
    assert "Only 0 labels of train-split comparisons" in run.error
    parts = {p["part"]: (p["comparisons"], p["labels"]) for p in run.report["reward_data"]["parts"]}
    assert parts == {"train": (0, 0), "valid": (6, 6), "test": (0, 0), "calibration": (2, 2)}


@pytest.mark.slow
def test_fit_reward_run_on_a_ranking_project_with_ratings_and_none_acceptable(contractor):
    """A ranking project (K=3, ties) with Likert ratings and "none acceptable", labeled on the labeling service:
    a round's fit run trains on the rankings (Plackett-Luce), adds the ratings' and the acceptability terms, and
    learns the labels (the better sample has more 'z'; a comparison whose best has no 'z' is none acceptable)."""
    import random

    from labeling.models import Project
    from labeling.services import LabelInput, comparison_next_for_labeler, label_submit

    rng = random.Random(0)
    project = ProjectFactory(k=3, calibration_share=0.0, label_type=Project.LabelType.RANKING,
                             likert_axes=["overall"], allow_none_acceptable=True)
    for i in range(60):
        query = Query.objects.create(project=project, context=f"q{i} ")
        texts = ["z" * rng.randint(0, 9) + "a" * rng.randint(2, 6) for _ in range(3)]
        comparison_create(project=project, query=query,
                          samples=[Sample.objects.create(query=query, text=t, source="test") for t in texts])
    while (assignment := comparison_next_for_labeler(project=project, labeler=contractor)) is not None:
        shown = [assignment.comparison.entries.get(position=p).sample.text.count("z") for p in assignment.display_order]
        if len(set(shown)) == 1:
            shown[0] += 1  # a ranking places one sample above another
        distinct = sorted(set(shown), reverse=True)
        ranking = [distinct.index(z) + 1 for z in shown]
        label_submit(assignment_id=assignment.id, labeler=contractor, answer=LabelInput(
            position=None, duration_ms=900, ranking=ranking, likert={"overall": [1 + min(z, 6) for z in shown]},
            none_acceptable=max(shown) == 0))
    config = {**FAST_REWARD, "epochs": 3, "ranking_loss": "plackett_luce", "likert_axis": "overall",
              "likert_coef": 0.5, "acceptability_coef": 0.5}
    run = TrainingRunFactory(project=project, kind="fit_reward", seed=1, config=config)
    assert run_execute(run_id=run.id) == Status.FINISHED
    metrics = dict(RunMetric.objects.filter(run=run).values_list("key", "value"))
    assert metrics["valid/accuracy"] >= 0.6  # chance 1/3
