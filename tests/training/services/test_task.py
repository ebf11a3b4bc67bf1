"""One task definition (training/services/task.py): the library's defaults it assumes, the fields it names
when runs disagree, and a run started against another run's reward model or policy of another task."""
import dataclasses

import pytest

from labeling.errors import InvalidInput
from training.rlhf.config import PPOConfig, RewardFitConfig
from training.services import run_create
from training.services.sampling import DEFAULTS as SAMPLE_DEFAULTS
from training.services.task import (
    LIBRARY_DEFAULTS,
    LIBRARY_TASK_KEYS,
    TASK_DEFAULTS,
    task_conflicts,
    task_errors,
    task_fill,
)
from tests.factories import ProjectFactory


def test_the_assumed_defaults_are_the_librarys():
    for kind, source in (("fit_reward", RewardFitConfig), ("ppo", PPOConfig)):
        library = {f.name: f.default for f in dataclasses.fields(source) if f.name in TASK_DEFAULTS}
        assert set(library) == set(LIBRARY_TASK_KEYS)
        # no truncate_token by default, and the context as it is
        assert {**library, "truncate_text": "", "query_format": "{context}"} == LIBRARY_DEFAULTS[kind], kind
    assert {k: SAMPLE_DEFAULTS[k] for k in TASK_DEFAULTS} == LIBRARY_DEFAULTS["sample"]


def test_conflicts_name_each_differing_field_and_the_task_fills_the_rest():
    task = {"response_length": 8}
    assert task_conflicts({"reward": {}, "ppo": {"response_length": 8}}, task) == []
    assert task_conflicts({"reward": {"temperature": 0.7}, "ppo": {}, "sample": {"query_length": 32}}, task) == [
        "reward.query_length = 64, ppo.query_length = 64, sample.query_length = 32",
        "reward.temperature = 0.7, ppo.temperature = 1.0, sample.temperature = 1.0",
    ]
    assert task_fill({"epochs": 2}, task, library=True) == {"epochs": 2, "query_length": 64, "response_length": 8,
                                                           "temperature": 1.0, "truncate_after": 0}
    assert task_fill({"n_queries": 2}, {"truncate_text": "."})["truncate_text"] == "."  # a sample section's
    assert task_errors({"response_len": 8, "query_length": 0, "temperature": -1, "truncate_after": 30}) == [
        "unknown task field 'response_len' (known: query_length, response_length, temperature, truncate_text, "
        "truncate_after, query_format)",
        "query_length must be a whole number ≥ 1",
        "temperature must be a number > 0 (greedy samples for people: the sample section's greedy)",
        "truncate_after must be a whole number from 0 to response_length − 1"]


@pytest.mark.django_db
def test_a_ppo_run_against_a_reward_model_of_another_task_is_refused_when_started():
    project = ProjectFactory(k=2)
    fit = run_create(project=project, kind="fit_reward", base_model="tiny", enqueue=False,
                     config={"query_length": 16, "response_length": 8})
    with pytest.raises(InvalidInput, match=r"this ppo run\.response_length = 16, run \d+ \(fit_reward\)"):
        run_create(project=project, kind="ppo", base_model="tiny", reward_run=fit, enqueue=False,
                   config={"query_length": 16})  # PPO's own default response length, 16
    ppo = run_create(project=project, kind="ppo", base_model="tiny", reward_run=fit, enqueue=False,
                     config={"query_length": 16, "response_length": 8})
    with pytest.raises(InvalidInput, match="temperature"):
        run_create(project=project, kind="sample", base_model="tiny", policy_run=ppo, enqueue=False,
                   config={"query_length": 16, "response_length": 8, "temperature": 0.5})


@pytest.mark.django_db
def test_the_tasks_truncation_text_reaches_every_run_of_a_round_and_a_section_token_is_refused(researcher):
    from tests.factories import make_comparison, make_label, UserFactory
    from training.services import round_start
    from training.services.reward_fit import reward_fit_config

    project = ProjectFactory(k=2)
    make_label(make_comparison(project), UserFactory(username="c-trunc", role="contractor"), chosen_index=0)
    project.training_settings = {"task": {"truncate_text": ".", "truncate_after": 3, "response_length": 8},
                                 "ppo": {"truncate_token": 13}}
    project.save()
    with pytest.raises(InvalidInput, match="ppo.truncate_token is set: set the task's truncate_text instead"):
        round_start(project=project, user=researcher)
    project.training_settings["ppo"] = {}
    project.save()
    rnd = round_start(project=project, user=researcher)
    fit, ppo, sample = rnd.runs.order_by("id")
    assert sample.config["truncate_text"] == "." and "truncate_text" not in fit.config
    assert fit.product["task"]["truncate_text"] == ppo.product["task"]["truncate_text"] == "."
    # The worker turns it into the base tokenizer's id ("." is byte 46 for the tiny byte model).
    assert reward_fit_config(fit).truncate_token == 46
    assert (ppo.config["truncate_after"], ppo.config["response_length"]) == (3, 8)


@pytest.mark.django_db
def test_the_query_format_shapes_every_query_a_run_samples_or_scores(researcher, monkeypatch):
    from labeling.models import Query
    from tests.factories import make_comparison, make_label, UserFactory
    from training.services import round_start
    from training.services.task import formatted, query_format
    from training.rlhf.data import Comparison

    assert query_format("A post {with braces}", {"query_format": "{context}\n\nTL;DR:"}) == \
        "A post {with braces}\n\nTL;DR:"
    assert formatted([Comparison(query="p", samples=["a", "b"], best=0)], {"query_format": "Q: {context}"})[0].query \
        == "Q: p"
    assert task_errors({"query_format": "no placeholder"}) == [
        'query_format must hold {context} exactly once (e.g. "{context}\\n\\nTL;DR:")']
    project = ProjectFactory(k=2)
    make_label(make_comparison(project), UserFactory(username="c-fmt", role="contractor"), chosen_index=0)
    project.training_settings = {"task": {"query_format": "{context}\n\nTL;DR:"}}
    project.save()
    rnd = round_start(project=project, user=researcher)
    fit, ppo, sample = rnd.runs.order_by("id")
    assert {run.product["task"]["query_format"] for run in (fit, ppo)} == {"{context}\n\nTL;DR:"}
    assert sample.config["query_format"] == "{context}\n\nTL;DR:" and "query_format" not in fit.config
    assert Query.objects.filter(project=project).exists()


def test_the_2020_preset_starts_a_round(researcher, db):
    from tests.factories import make_comparison, make_label, UserFactory
    from training.rlhf.presets import PRESETS
    from training.services import round_start

    project = ProjectFactory(k=2)
    make_label(make_comparison(project), UserFactory(username="c-2020", role="contractor"), chosen_index=0)
    project.training_settings = PRESETS["2020"].settings()
    project.save()
    fit, ppo, sample = round_start(project=project, user=researcher).runs.order_by("id")
    assert (fit.config["readout"], ppo.config["value_model"], sample.config["greedy"]) == ("eot", "separate", True)
    assert "reward" not in ppo.config  # the round's fitted reward model, set when the run executes
