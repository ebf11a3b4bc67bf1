"""Starting a sweep: one fit, a PPO and a sample run per β, chained by round_run_ended; bad β lists write nothing."""
from unittest import mock

import pytest
from django.utils import timezone

from labeling.errors import Forbidden, InvalidInput
from labeling.roles import RESEARCHER
from training.models import Round, TrainingRun
from training.services import round_run_ended
from training.services.sweep import sweep_betas_errors, sweep_start
from tests.factories import UserFactory
from tests.training.helpers import FAST_PPO, FAST_REWARD, FAST_SAMPLE, labeled_project

pytestmark = pytest.mark.django_db
Status = TrainingRun.Status


@pytest.fixture
def sweep_project(contractor):
    researcher = UserFactory(username="r-sweep", role=RESEARCHER)
    project = labeled_project(contractor, researcher, n=8, n_calibration=2)
    project.training_settings = {"reward": FAST_REWARD, "ppo": {**FAST_PPO, "adaptive_kl": True, "kl_target": 3.0},
                                 "sample": FAST_SAMPLE}
    project.save()
    return project, researcher


def test_a_sweep_fans_out_one_ppo_and_one_sample_run_per_beta(sweep_project, django_capture_on_commit_callbacks):
    project, researcher = sweep_project
    with mock.patch("training.tasks.run_execute_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            rnd = sweep_start(project=project, user=researcher, betas=[0.5, 0.1, 0.02])
        rnd.refresh_from_db()
        assert rnd.sweep == {"betas": [0.5, 0.1, 0.02]} and rnd.status == Round.Status.RUNNING
        fit = rnd.runs.get(kind="fit_reward")
        ppos = list(rnd.runs.filter(kind="ppo").order_by("id"))
        samples = list(rnd.runs.filter(kind="sample").order_by("id"))
        assert [p.config["kl_coef"] for p in ppos] == [0.5, 0.1, 0.02]
        assert all(p.reward_run_id == fit.id and p.config["adaptive_kl"] is False for p in ppos)
        assert [s.policy_run_id for s in samples] == [p.id for p in ppos]
        assert all(s.config["base_share"] == 1.0 for s in samples)
        assert [c.args for c in delay.call_args_list] == [(fit.id,)]  # only the fit is sent at first

        # The fit finishes: every PPO run is sent; a PPO run finishes: its own sample run only.
        delay.reset_mock()
        TrainingRun.objects.filter(id=fit.id).update(status=Status.FINISHED, finished_at=timezone.now())
        with django_capture_on_commit_callbacks(execute=True):
            round_run_ended(run_id=fit.id)
        assert sorted(c.args[0] for c in delay.call_args_list) == [p.id for p in ppos]
        delay.reset_mock()
        TrainingRun.objects.filter(id=ppos[1].id).update(status=Status.FINISHED, finished_at=timezone.now())
        with django_capture_on_commit_callbacks(execute=True):
            round_run_ended(run_id=ppos[1].id)
        assert [c.args for c in delay.call_args_list] == [(samples[1].id,)]
    rnd.refresh_from_db()
    assert rnd.status == Round.Status.RUNNING


@pytest.mark.parametrize("betas, message", [
    ([0.1, 0.2], "3 to 8"), ([0.1] * 2 + [0.3], "each β once"), ([0.1, 0.0, 0.2], "positive"),
    ([0.1, -1.0, 0.2], "positive"), ([0.1, float("nan"), 0.2], "positive"), ([0.1 * i for i in range(1, 10)], "3 to 8"),
    ([0.1, True, 0.3], "numbers"),
])
def test_bad_beta_lists_are_refused_and_write_nothing(sweep_project, betas, message):
    project, researcher = sweep_project
    assert any(message in e for e in sweep_betas_errors(betas))
    with pytest.raises(InvalidInput, match=message):
        sweep_start(project=project, user=researcher, betas=betas)
    assert not Round.objects.filter(project=project).exists() and not TrainingRun.objects.exists()


def test_contractors_cannot_start_a_sweep(sweep_project, contractor):
    project, _ = sweep_project
    with pytest.raises(Forbidden):
        sweep_start(project=project, user=contractor, betas=[0.1, 0.2, 0.3])
    assert not Round.objects.filter(project=project).exists()
