"""One task definition (training/services/task.py): the library's defaults it assumes, the fields it names
when runs disagree, and a run started against another run's reward model or policy of another task."""
import dataclasses

import pytest

from labeling.errors import InvalidInput
from training.rlhf.config import PPOConfig, RewardFitConfig
from training.services import run_create
from training.services.sampling import DEFAULTS as SAMPLE_DEFAULTS
from training.services.task import LIBRARY_DEFAULTS, TASK_DEFAULTS, task_conflicts, task_errors, task_fill
from tests.factories import ProjectFactory


def test_the_assumed_defaults_are_the_librarys():
    for kind, source in (("fit_reward", RewardFitConfig), ("ppo", PPOConfig)):
        library = {f.name: f.default for f in dataclasses.fields(source) if f.name in TASK_DEFAULTS}
        assert library == LIBRARY_DEFAULTS[kind], kind
    assert {k: SAMPLE_DEFAULTS[k] for k in ("query_length", "response_length", "temperature", "truncate_after")} \
        == LIBRARY_DEFAULTS["sample"]


def test_conflicts_name_each_differing_field_and_the_task_fills_the_rest():
    task = {"response_length": 8}
    assert task_conflicts({"reward": {}, "ppo": {"response_length": 8}}, task) == []
    assert task_conflicts({"reward": {"temperature": 0.7}, "ppo": {}, "sample": {"query_length": 32}}, task) == [
        "reward.query_length = 64, ppo.query_length = 64, sample.query_length = 32",
        "reward.temperature = 0.7, ppo.temperature = 1.0, sample.temperature = 1.0",
    ]
    assert task_fill({"epochs": 2}, task) == {"epochs": 2, "query_length": 64, "response_length": 8,
                                             "temperature": 1.0, "truncate_after": 0}
    assert task_errors({"response_len": 8, "query_length": 0, "temperature": -1}) == [
        "unknown task field 'response_len' (known: query_length, response_length, temperature, truncate_after)",
        "query_length must be a whole number ≥ 1", "temperature must be a number > 0"]


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
