"""A sample run publishes comparisons of the policy's (and base policy's) samples, once."""
import pytest

from labeling.models import Comparison, Query, Sample
from training.models import RunMetric, TrainingRun
from training.services.execute import run_execute
from tests.factories import ProjectFactory, TrainingRunFactory

pytestmark = pytest.mark.django_db
Status = TrainingRun.Status


@pytest.fixture
def project_with_queries():
    project = ProjectFactory(k=4)
    for i in range(6):
        Query.objects.create(project=project, context=f"Once upon a time number {i}, there was", external_id=f"q{i}")
    return project


@pytest.fixture
def finished_policy_run(project_with_queries, settings, tmp_path):
    """A PPO run whose final checkpoint is a (differently seeded) tiny policy saved with save_pretrained."""
    from training.rlhf.models import PolicyWithValue, build_tiny
    from training.services import checkpoint_record

    settings.ARTIFACTS_DIR = tmp_path
    ppo = TrainingRunFactory(project=project_with_queries, kind="ppo", status=Status.FINISHED)
    lm, tokenizer = build_tiny(seed=7)
    folder = tmp_path / "runs" / f"run-{ppo.id}" / "final"
    PolicyWithValue(lm).save_pretrained(folder, tokenizer)
    checkpoint_record(run=ppo, step=5, path=folder, is_final=True)
    return ppo


def test_sample_run_publishes_k_samples_per_query_once(project_with_queries, finished_policy_run):
    run = TrainingRunFactory(project=project_with_queries, kind="sample", seed=3, policy_run=finished_policy_run,
                             config={"n_queries": 4, "response_length": 8, "base_share": 1.0})
    assert run_execute(run_id=run.id) == Status.FINISHED
    comparisons = Comparison.objects.filter(source_run=run)
    assert comparisons.count() == 4
    for comparison in comparisons:
        sources = sorted(comparison.samples.values_list("source", flat=True))
        assert len(sources) == 4
        assert sources.count("baseline:base-policy") == 2  # base_share 1.0: half the slots
        assert sources.count(f"run{finished_policy_run.id}-step5") == 2  # tagged with the checkpoint
    assert Sample.objects.filter(generation_params__seed=3).count() == 16
    run.refresh_from_db()
    assert run.status == Status.FINISHED and run.lease_owner == ""
    # A re-delivered message cannot claim a finished run; even a forced re-run publishes nothing twice.
    assert run_execute(run_id=run.id) is None
    TrainingRun.objects.filter(id=run.id).update(status=Status.QUEUED)
    run_execute(run_id=run.id)
    assert Comparison.objects.filter(source_run=run).count() == 4


def test_sample_run_without_queries_fails_with_reason():
    run = TrainingRunFactory(project=ProjectFactory(), kind="sample")
    assert run_execute(run_id=run.id) == Status.FAILED
    run.refresh_from_db()
    assert "no train queries" in run.error


def _force_model(monkeypatch, tokens: list[int]) -> None:
    """Every `load_lm` of the sample run (policy and base) gives a tiny model that writes only `tokens`."""
    from tests.training.rlhf.stub_models import forced_tiny
    from training.rlhf import models
    from training.services import sampling

    def load_lm(*args, **kwargs):
        return forced_tiny(tokens)

    monkeypatch.setattr(models, "load_lm", load_lm)
    monkeypatch.setattr(sampling, "load_lm", load_lm, raising=False)  # wherever the service looks it up


def _metrics(run) -> dict[str, float]:
    return dict(RunMetric.objects.filter(run=run).values_list("key", "value"))


def test_a_sample_run_publishes_only_valid_samples_and_reports_the_invalid_share(project_with_queries, monkeypatch):
    """Half the draws miss the rule ("." at index 3 of 4): they are redrawn, never published, and counted."""
    _force_model(monkeypatch, [ord("."), ord("a")])
    run = TrainingRunFactory(project=project_with_queries, kind="sample", seed=1, config={
        "n_queries": 6, "response_length": 4, "query_length": 8, "truncate_text": ".", "truncate_after": 3,
        "max_tries": 2, "base_share": 1.0})
    assert run_execute(run_id=run.id) == Status.FINISHED
    published = Comparison.objects.filter(source_run=run)
    texts = list(Sample.objects.filter(comparisons__in=published).values_list("text", flat=True))
    metrics = _metrics(run)
    assert 0 < published.count() < 6 and len(texts) == 4 * published.count()
    assert all(len(text) == 4 and text.endswith(".") for text in texts), texts  # valid: the "." at index 3
    assert metrics["sample/comparisons"] == published.count()
    assert metrics["sample/dropped_queries"] == 6 - published.count()
    assert 0.3 < metrics["sample/invalid_share"] < 0.7 and metrics["sample/draws"] > 6 * 4


def test_a_sample_run_stores_a_nul_emitting_models_text(project_with_queries, monkeypatch):
    """Byte 0 fails a PostgreSQL insert (and SQLite would store it as is): the decoder makes it U+FFFD."""
    _force_model(monkeypatch, [0, ord("a")])
    run = TrainingRunFactory(project=project_with_queries, kind="sample", config={
        "n_queries": 2, "response_length": 3, "query_length": 8})
    assert run_execute(run_id=run.id) == Status.FINISHED, TrainingRun.objects.get(id=run.id).error
    texts = set(Sample.objects.filter(comparisons__source_run=run).values_list("text", flat=True))
    assert texts and all(set(text) <= {"\ufffd", "a"} for text in texts)
    assert any("\ufffd" in text for text in texts) and not any("\x00" in text for text in texts)


@pytest.mark.parametrize(("config", "error"), [
    ({"max_tries": 0}, "max_tries"), ({"max_tries": 2.5}, "max_tries"),
    ({"truncate_text": ".", "truncate_after": 8, "response_length": 8}, "truncate_after"),
    ({"truncate_text": "ab"}, "exactly one"),
])
def test_a_sample_run_with_settings_no_response_could_meet_fails_with_the_reason(project_with_queries, config, error):
    run = TrainingRunFactory(project=project_with_queries, kind="sample", config={"n_queries": 1, **config})
    assert run_execute(run_id=run.id) == Status.FAILED
    assert error in TrainingRun.objects.get(id=run.id).error


def test_greedy_samples_pit_the_policys_most_likely_response_against_the_bases(finished_policy_run, monkeypatch):
    """2020: samples for people at T = 0. K = 2, every pair policy against base, whatever the seed; a pair whose
    texts are equal (the policy answers as the base does) is left out and counted."""
    from tests.training.rlhf.stub_models import forced_tiny
    from training.rlhf import models

    project = finished_policy_run.project
    project.k = 2
    project.save(update_fields=["k"])
    config = {"n_queries": 6, "response_length": 6, "query_length": 16, "greedy": True, "base_share": 1.0}
    same = TrainingRunFactory(project=project, kind="sample", policy_run=finished_policy_run, config=config)
    assert run_execute(run_id=same.id) == Status.FINISHED  # random tiny models all answer "ssssss" greedily
    assert not Comparison.objects.filter(source_run=same).exists()
    assert _metrics(same)["sample/duplicate_comparisons"] == 6

    load_lm = models.load_lm  # the base writes "b"s; the policy (a checkpoint folder) loads as it is
    monkeypatch.setattr(models, "load_lm", lambda name, *a, **k: forced_tiny([ord("b")]) if name == "tiny"
                        else load_lm(name, *a, **k))
    runs = [TrainingRunFactory(project=project, kind="sample", seed=seed, policy_run=finished_policy_run,
                               config=config) for seed in (1, 2)]
    for run in runs:
        assert run_execute(run_id=run.id) == Status.FINISHED, TrainingRun.objects.get(id=run.id).error
    pairs = [{c.query_id: sorted(c.samples.values_list("source", "text")) for c in
              Comparison.objects.filter(source_run=run)} for run in runs]
    assert len(pairs[0]) == 6
    for query_id, pair in pairs[0].items():
        assert pair == [("baseline:base-policy", "bbbbbb"), (f"run{finished_policy_run.id}-step5", "ssssss")]
        if query_id in pairs[1]:
            assert pairs[1][query_id] == pair  # no seed in a greedy text
    params = Sample.objects.filter(comparisons__source_run=runs[0]).values_list("generation_params", flat=True)
    assert {p["temperature"] for p in params} == {0.0}


@pytest.mark.parametrize(("k", "config", "error"), [
    (2, {"greedy": True}, "greedy needs base_share 1"),
    (4, {"greedy": True, "base_share": 1.0}, "K = 2 project"),
])
def test_greedy_needs_pairs_of_policy_and_base(project_with_queries, k, config, error):
    project_with_queries.k = k
    project_with_queries.save(update_fields=["k"])
    run = TrainingRunFactory(project=project_with_queries, kind="sample", config={"n_queries": 1, **config})
    assert run_execute(run_id=run.id) == Status.FAILED
    assert error in TrainingRun.objects.get(id=run.id).error


def test_comparisons_whose_texts_are_all_equal_are_not_published(project_with_queries, monkeypatch):
    """A collapsed policy (here: one that writes only "a") gives K equal samples: nothing to compare, so the
    comparison is left out and counted, never put in front of labelers."""
    _force_model(monkeypatch, [ord("a")])
    run = TrainingRunFactory(project=project_with_queries, kind="sample", config={
        "n_queries": 3, "response_length": 3, "query_length": 8})
    assert run_execute(run_id=run.id) == Status.FINISHED
    assert not Comparison.objects.filter(source_run=run).exists()
    assert _metrics(run)["sample/duplicate_comparisons"] == 3 and _metrics(run)["sample/comparisons"] == 0
