"""A run's stored config holds the library's keys only: the product's keys and the report have their own fields,
for new runs (rounds, run_create, the experiment's report) and for old rows (migration 0003)."""
import dataclasses
import importlib

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from labeling.roles import RESEARCHER
from tests.factories import ProjectFactory, UserFactory, make_comparison, make_label
from tests.training.helpers import FAST_PPO, FAST_REWARD, FAST_SAMPLE, FAST_TASK
from training.models import TrainingRun
from training.rlhf.config import PPOConfig, RewardFitConfig
from training.selectors import run_report
from training.services import round_start, run_create
from training.services.experiment import run_report_record
from training.services.task import TASK_DEFAULTS
from training.services.tripwires import tripwire_limits

migration = importlib.import_module("training.migrations.0003_trainingrun_product_report")
BEFORE, AFTER = ("training", "0002_andon_pull_at_step"), ("training", "0003_trainingrun_product_report")
ONLINE = {"publish_every": 2, "online_sample": {"n_queries": 2, **FAST_TASK, "truncate_text": "",
                                                "query_format": "{context}"}}
REPORT = {"figures": {"labeler": "sentiment", "labels": 40, "win_rate": 0.6}, "plots": {"score_vs_kl": "/x.png"}}


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _labeled(project, n: int = 3):
    labeler = UserFactory(username="c-config", role="contractor")
    for _ in range(n):
        make_label(make_comparison(project), labeler, chosen_index=0)
    return project


@pytest.mark.django_db
def test_a_rounds_runs_keep_library_config_product_keys_and_report_apart(django_capture_on_commit_callbacks):
    project = _labeled(ProjectFactory(k=2, training_settings={
        "reward": {**FAST_REWARD, "readout": "mean"}, "ppo": {**FAST_PPO, **ONLINE}, "sample": FAST_SAMPLE,
        "tripwires": {"kl_max": 12.0}}))
    researcher = UserFactory(username="r-config", role=RESEARCHER)
    with django_capture_on_commit_callbacks(execute=False):  # created, not run
        rnd = round_start(project=project, user=researcher)
    fit, ppo, sample = rnd.runs.order_by("id")

    assert fit.config == {**FAST_REWARD, "readout": "mean"} and set(fit.config) <= _fields(RewardFitConfig)
    assert ppo.config == FAST_PPO and set(ppo.config) <= _fields(PPOConfig)
    assert sample.config == {**FAST_SAMPLE, "truncate_text": "", "query_format": "{context}"}  # the task's, filled
    task = {**TASK_DEFAULTS, **FAST_TASK}
    assert fit.product == {"tripwires": tripwire_limits(fit), "label_snapshot": rnd.label_snapshot, "task": task}
    assert ppo.product == {**ONLINE, "tripwires": tripwire_limits(ppo), "task": task}
    assert ppo.product["tripwires"]["kl_max"] == 12.0
    assert sample.product == {"tripwires": tripwire_limits(sample), "task": task}
    assert all(run.report == {} and run_report(run) is None for run in (fit, ppo, sample))

    # The experiment's report after the run goes into `report`; `config` is left as it was.
    results = {"settings": {"labeler": "sentiment", "labels": 40}, "curve": [{"pairwise_accuracy": float("nan")}],
               "tuned": {"win_rate": 0.6, "mean_score": 0.3, "kl": 2.0, "copy_rate": 0.1},
               "base": {"mean_score": 0.1, "copy_rate": 0.1}, "total": {"wall_s": 9.0}}
    run_report_record(run=ppo, results=results, plots={"score_vs_kl": "/x.png"})
    ppo.refresh_from_db()
    assert ppo.config == FAST_PPO and ppo.product == {**ONLINE, "tripwires": tripwire_limits(ppo), "task": task}
    assert ppo.report["figures"]["win_rate"] == 0.6 and ppo.report["figures"]["rm_pairwise_accuracy"] is None
    assert run_report(ppo)["plots"] == [("score_vs_kl", "True score against KL from the base")]


@pytest.mark.django_db
def test_run_create_refuses_product_keys_and_reports_in_config(project):
    for key in (*TrainingRun.PRODUCT_KEYS, "report"):
        with pytest.raises(ValueError, match=key):
            run_create(project=project, kind="ppo", base_model="tiny", config={**FAST_PPO, key: {}}, enqueue=False)
    with pytest.raises(ValueError, match="lr"):
        run_create(project=project, kind="ppo", base_model="tiny", product={"lr": 1.0}, enqueue=False)
    run = run_create(project=project, kind="ppo", base_model="tiny", config=FAST_PPO, product=ONLINE, enqueue=False)
    assert (run.config, run.product, run.report) == (FAST_PPO, ONLINE, {})


OLD_ROWS = [  # (kind, old-style config, then config, product and report after the migration)
    ("ppo", {**FAST_PPO, "reward": "builtin:lowercase", **ONLINE, "tripwires": {"kl_max": 5.0}, "report": REPORT},
     {**FAST_PPO, "reward": "builtin:lowercase"}, {**ONLINE, "tripwires": {"kl_max": 5.0}}, REPORT),
    ("fit_reward", {**FAST_REWARD, "label_snapshot": {"max_label_id": 9, "count": 7}},
     FAST_REWARD, {"label_snapshot": {"max_label_id": 9, "count": 7}}, {}),
    ("sample", FAST_SAMPLE, FAST_SAMPLE, {}, {}),
    ("sample", {}, {}, {}, {}),
]


def test_split_and_merge_of_one_old_style_config():
    for _, old, config, product, report in OLD_ROWS:
        assert migration.split_run_config(old, {}, {}) == (config, product, report)
        assert migration.merge_run_config(config, product, report) == old


@pytest.mark.django_db
def test_the_data_migration_functions_move_a_mixed_row_and_back(project):
    """The forward and reverse functions on rows written as the old code wrote them."""
    runs = [TrainingRun.objects.create(project=project, kind=kind, base_model="tiny", config=old)
            for kind, old, *_ in OLD_ROWS]
    migration.split_configs(apps, None)
    for run, (_, _, config, product, report) in zip(runs, OLD_ROWS):
        run.refresh_from_db()
        assert (run.config, run.product, run.report) == (config, product, report)
    migration.split_configs(apps, None)  # twice: nothing moves again
    assert TrainingRun.objects.get(id=runs[0].id).config == OLD_ROWS[0][2]
    migration.merge_configs(apps, None)
    assert [TrainingRun.objects.get(id=run.id).config for run in runs] == [old for _, old, *_ in OLD_ROWS]


@pytest.mark.django_db(transaction=True)
def test_migrating_to_0003_and_back_moves_an_old_style_row(project):
    """Django's executor: a row written at 0002 is split by 0003, and merged back when 0003 is unapplied."""
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate([BEFORE])
    try:
        kind, old, config, product, report = OLD_ROWS[0]
        Old = MigrationExecutor(connection).loader.project_state([BEFORE]).apps.get_model("training", "TrainingRun")
        run_id = Old.objects.create(project_id=project.id, kind=kind, base_model="tiny", config=old).id

        executor = MigrationExecutor(connection)
        executor.migrate([AFTER])
        New = executor.loader.project_state([AFTER]).apps.get_model("training", "TrainingRun")
        row = New.objects.get(id=run_id)
        assert (row.config, row.product, row.report) == (config, product, report)

        executor = MigrationExecutor(connection)
        executor.migrate([BEFORE])
        assert Old.objects.get(id=run_id).config == old
    finally:
        MigrationExecutor(connection).migrate(leaves)
