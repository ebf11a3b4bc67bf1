"""A whole round in-process: labels → reward model → PPO → new comparisons on the labeling page."""
import pytest
from django.urls import reverse

from labeling.models import Comparison, Label
from labeling.roles import RESEARCHER
from training.models import AndonPull, Checkpoint, Round, RunMetric, TrainingRun
from training.services import round_start
from tests.factories import UserFactory
from tests.training.helpers import FAST_PPO, FAST_REWARD, FAST_SAMPLE, labeled_project

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
Status = TrainingRun.Status


def _settings(project, **ppo):
    project.training_settings = {"reward": FAST_REWARD, "ppo": {**FAST_PPO, **ppo}, "sample": FAST_SAMPLE}
    project.save()


def test_round_trains_and_publishes_tagged_comparisons(contractor, other_contractor, client,
                                                      django_capture_on_commit_callbacks):
    researcher = UserFactory(username="r-round", role=RESEARCHER)
    project = labeled_project(contractor, researcher, n=64, n_calibration=12)
    _settings(project)
    before = Comparison.objects.filter(project=project).count()
    with django_capture_on_commit_callbacks(execute=True):
        rnd = round_start(project=project, user=researcher)
    rnd.refresh_from_db()
    fit, ppo, sample = rnd.runs.order_by("id")
    assert [r.status for r in (fit, ppo, sample)] == [Status.FINISHED] * 3, [r.error for r in (fit, ppo, sample)]
    assert rnd.status == Round.Status.FINISHED
    assert rnd.label_snapshot["count"] == Label.objects.filter(comparison__project=project).count() >= 70
    # After the runs: the library's config only in `config`, the product's keys beside it, the fit's data
    # (what it trained on) and its Hugging Face export (or why none) its report.
    assert set(fit.report) == {"reward_data", "hf_sequence_classification"} and ppo.report == sample.report == {}
    for run in (fit, ppo, sample):
        assert not set(run.config) & {*TrainingRun.PRODUCT_KEYS, "report"}
        assert run.product["tripwires"]["kl_max"] == 30.0
    assert fit.product["label_snapshot"] == rnd.label_snapshot and fit.config == FAST_REWARD
    assert RunMetric.objects.filter(run=ppo, key="objective/kl").count() == 3
    final = Checkpoint.objects.get(run=ppo, is_final=True)
    assert final.step == 3
    published = Comparison.objects.filter(source_run=sample)
    assert published.count() == 5 and Comparison.objects.filter(project=project).count() == before + 5
    assert all(f"run{ppo.id}-step3" in c.samples.values_list("source", flat=True) for c in published)
    # The new comparisons are served on the labeling page.
    client.force_login(other_contractor)
    page = client.get(reverse("labeling-compare", kwargs={"slug": project.slug}))
    # The cord names the policy that wrote what the labeler sees (the comparison leads to it).
    assert b"Stop this policy" in page.content and b"/andon/" in page.content


def test_sign_flipped_ppo_is_stopped_by_the_tripwire_before_training(contractor,
                                                                     django_capture_on_commit_callbacks):
    researcher = UserFactory(username="r-flip2", role=RESEARCHER)
    project = labeled_project(contractor, researcher, n=64, n_calibration=12)
    _settings(project, negate_score=True)
    with django_capture_on_commit_callbacks(execute=True):
        rnd = round_start(project=project, user=researcher)
    fit, ppo, sample = rnd.runs.order_by("id")
    assert fit.status == Status.FINISHED
    ppo.refresh_from_db()
    assert ppo.status == Status.STOPPED and ppo.step == 0
    pull = AndonPull.objects.get(run=ppo)
    assert pull.tripwire == "reward_sign" and "flipped sign" in pull.reason
    assert not RunMetric.objects.filter(run=ppo, key="objective/kl").exists()
    sample.refresh_from_db()
    # The sample run would sample the pulled policy: the cord stopped it before it started.
    assert sample.status == Status.STOPPED and not Comparison.objects.filter(source_run=sample).exists()
    assert set(pull.stopped.values_list("id", flat=True)) == {ppo.id, sample.id}
    assert Round.objects.get(id=rnd.id).status == Round.Status.STOPPED


def test_a_round_whose_sample_settings_no_response_could_meet_is_refused_at_start():
    """`truncate_after` past the response, or tries out of range: refused before any run is created."""
    from labeling.errors import InvalidInput
    from tests.factories import ProjectFactory, make_comparison, make_label

    researcher = UserFactory(username="r-tries", role=RESEARCHER)
    project = ProjectFactory(k=2)
    make_label(make_comparison(project), UserFactory(username="c-tries", role="contractor"), chosen_index=0)
    project.training_settings = {"task": {"truncate_after": 8, "response_length": 8, "truncate_text": "."},
                                 "ppo": {"publish_every": 1, "online_sample": {"max_tries": 0}}}
    project.save()
    with pytest.raises(InvalidInput, match="truncate_after.*online_sample: max_tries"):
        round_start(project=project, user=researcher)
    assert not Round.objects.filter(project=project).exists()


def test_a_round_with_labels_only_on_calibration_or_valid_comparisons_is_refused_at_start():
    """The fit would have nothing to train on: refused before any run is created, saying why."""
    from labeling.errors import InvalidInput
    from labeling.models import Query
    from tests.factories import ProjectFactory, make_comparison, make_label

    researcher = UserFactory(username="r-splits", role=RESEARCHER)
    labeler = UserFactory(username="c-splits", role="contractor")
    project = ProjectFactory(k=2)
    make_label(make_comparison(project, is_calibration=True), labeler, chosen_index=0)
    valid = make_comparison(project)
    Query.objects.filter(id=valid.query_id).update(split=Query.Split.VALID)
    make_label(valid, labeler, chosen_index=1)
    with pytest.raises(InvalidInput, match="train-split"):
        round_start(project=project, user=researcher)
    assert not Round.objects.filter(project=project).exists()


def test_a_round_whose_sections_disagree_on_the_task_is_refused_at_start_naming_the_fields():
    """A PPO run scored by a reward model fitted on responses of another length: refused before any run exists."""
    from labeling.errors import InvalidInput
    from tests.factories import ProjectFactory, make_comparison, make_label

    researcher = UserFactory(username="r-task", role=RESEARCHER)
    project = ProjectFactory(k=2)
    make_label(make_comparison(project), UserFactory(username="c-task", role="contractor"), chosen_index=0)
    project.training_settings = {"reward": {**FAST_REWARD, "response_length": 16}, "ppo": FAST_PPO,
                                 "sample": FAST_SAMPLE}
    project.save()
    with pytest.raises(InvalidInput) as refused:
        round_start(project=project, user=researcher)
    message = str(refused.value)
    assert "reward.response_length = 16, ppo.response_length = 8, sample.response_length = 8" in message
    assert "query_length" not in message and not Round.objects.filter(project=project).exists()

    # Set once in the task section, every run gets it; a section that leaves it out inherits it.
    project.training_settings = {"task": {"query_length": 16, "response_length": 8}, "reward": {"epochs": 1},
                                 "ppo": {"total_episodes": 16}, "sample": {"n_queries": 1}}
    project.save()
    fit, ppo, sample = round_start(project=project, user=researcher).runs.order_by("id")
    for run in (fit, ppo, sample):
        assert (run.config["query_length"], run.config["response_length"], run.config["temperature"]) == (16, 8, 1.0)


def test_a_misspelt_or_bad_library_setting_is_refused_at_round_start_naming_it():
    """`kl_coeff` (for kl_coef) and an unknown precision were dropped or failed in the worker after the fit."""
    from labeling.errors import InvalidInput
    from tests.factories import ProjectFactory, make_comparison, make_label

    researcher = UserFactory(username="r-typo", role=RESEARCHER)
    project = ProjectFactory(k=2)
    make_label(make_comparison(project), UserFactory(username="c-typo", role="contractor"), chosen_index=0)
    project.training_settings = {"task": {"query_length": 16, "response_length": 8},
                                 "ppo": {"kl_coeff": 0.1}, "reward": {"precision": "bf16"}}
    project.save()
    with pytest.raises(InvalidInput) as refused:
        round_start(project=project, user=researcher)
    message = str(refused.value)
    assert "reward: " in message and "precision" in message and "ppo: unknown PPOConfig fields: kl_coeff" in message
    assert not Round.objects.filter(project=project).exists()


def test_a_micro_batch_size_that_does_not_divide_the_batch_is_refused_at_round_start_naming_it():
    """Gradient accumulation needs equal micro-batches: refused now, not in the worker after the fit."""
    from labeling.errors import InvalidInput
    from tests.factories import ProjectFactory, make_comparison, make_label

    researcher = UserFactory(username="r-micro", role=RESEARCHER)
    project = ProjectFactory(k=2)
    make_label(make_comparison(project), UserFactory(username="c-micro", role="contractor"), chosen_index=0)
    project.training_settings = {"task": {"query_length": 16, "response_length": 8},
                                 "ppo": {"batch_size": 16, "nminibatches": 2, "micro_batch_size": 3},
                                 "reward": {"batch_size": 8, "micro_batch_size": 5}}
    project.save()
    with pytest.raises(InvalidInput) as refused:
        round_start(project=project, user=researcher)
    message = str(refused.value)
    assert "ppo: " in message and "micro_batch_size 3 must divide the per-rank minibatch (8)" in message
    assert "reward: " in message and "micro_batch_size 5 must divide batch_size (8)" in message
    assert not Round.objects.filter(project=project).exists()
