"""`reward.gpus`: a reward fit over several GPUs, refused at round start (and on the settings page) beyond what a
training worker has or what its ranks cannot do, and checked by the worker before any rank starts."""
import pytest

from labeling.errors import InvalidInput
from training.models import TrainingRun
from training.services import round_start, run_create, training_settings_errors
from training.services import ranks as ranks_service
from training.services.execute import run_execute
from tests.factories import ProjectFactory, UserFactory, make_comparison, make_label

pytestmark = pytest.mark.django_db


@pytest.fixture
def labeled(settings):
    settings.TRAINING_WORKER_GPUS = 2
    project = ProjectFactory(k=2)
    make_label(make_comparison(project), UserFactory(username="c-rgpus", role="contractor"), chosen_index=0)
    return project


@pytest.fixture
def no_torchrun(monkeypatch):
    """Fail the test if a worker starts ranks: the checks under test come first."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"torchrun started: {args[0]}")

    monkeypatch.setattr(ranks_service.subprocess, "Popen", refuse)


@pytest.mark.parametrize("gpus", [3, 0, 1.5, True, "2"])
def test_reward_gpus_beyond_the_workers_or_not_a_whole_number_is_refused_at_round_start(labeled, researcher, gpus):
    labeled.training_settings = {"reward": {"gpus": gpus}}
    labeled.save()
    with pytest.raises(InvalidInput, match=r"reward: gpus must be a whole number from 1 to 2 .*got"):
        round_start(project=labeled, user=researcher)
    assert not TrainingRun.objects.exists()


def test_reward_gpus_the_workers_have_go_to_the_fit_runs_product(labeled, researcher):
    labeled.training_settings = {"reward": {"gpus": 2, "strategy": "fsdp"}, "ppo": {"gpus": 1}}
    labeled.save()
    rnd = round_start(project=labeled, user=researcher)
    fit = rnd.runs.get(kind=TrainingRun.Kind.FIT_REWARD)
    assert fit.product["gpus"] == 2 and "gpus" not in fit.config and fit.config["strategy"] == "fsdp"
    assert rnd.runs.get(kind=TrainingRun.Kind.PPO).product["gpus"] == 1


def test_fp16_with_fsdp_over_several_gpus_is_refused_for_the_reward_fit_alone(labeled, researcher):
    reward = {"gpus": 2, "strategy": "fsdp", "precision": "fp16-mixed"}
    labeled.training_settings = {"reward": reward}
    labeled.save()
    with pytest.raises(InvalidInput, match="reward: precision 'fp16-mixed' is not available with strategy 'fsdp'"):
        round_start(project=labeled, user=researcher)
    errors = training_settings_errors({"reward": reward})
    assert list(errors) == ["reward.gpus"] and "fp16-mixed" in errors["reward.gpus"][0]
    # One GPU, or DDP, has no sharded gradients to unscale: both are fine.
    assert training_settings_errors({"reward": {**reward, "gpus": 1}}) == {}
    assert training_settings_errors({"reward": {**reward, "strategy": "ddp"}}) == {}


def test_the_settings_page_names_reward_gpus_by_field(settings):
    settings.TRAINING_WORKER_GPUS = 2
    assert training_settings_errors({"reward": {"gpus": 2}}) == {}
    errors = training_settings_errors({"reward": {"gpus": 4}})
    assert list(errors) == ["reward.gpus"] and errors["reward.gpus"][0].startswith("gpus must be a whole number")


def test_a_fit_asking_more_gpus_than_the_worker_sees_fails_before_any_rank_starts(labeled, monkeypatch, no_torchrun):
    monkeypatch.setattr(ranks_service, "worker_devices", lambda: ("cuda", 1))
    run = run_create(project=labeled, kind="fit_reward", base_model="tiny", seed=1, product={"gpus": 2},
                     enqueue=False)
    make_label(make_comparison(labeled), UserFactory(username="c-rgpus2", role="contractor"), chosen_index=1)
    assert run_execute(run_id=run.id) == TrainingRun.Status.FAILED
    run.refresh_from_db()
    assert "gpus: 2 asked, this worker sees 1 GPUs" in run.error


def test_a_fit_without_enough_labels_fails_in_the_worker_with_its_reason_not_in_the_ranks(labeled, no_torchrun):
    run = run_create(project=labeled, kind="fit_reward", base_model="tiny", seed=1, product={"gpus": 2},
                     enqueue=False)
    assert run_execute(run_id=run.id) == TrainingRun.Status.FAILED
    run.refresh_from_db()
    assert "Only 1 labels of train-split comparisons" in run.error
    assert run.report["reward_data"]["parts"]  # what the snapshot held is still reported


def test_the_gathered_fsdp_copy_is_scored_on_the_gpu_or_on_the_cpu_when_it_does_not_fit_there(monkeypatch):
    import torch

    from training.rlhf.config import RewardFitConfig
    from training.services.reward_fit import _evaluation_device

    model = torch.nn.Linear(2, 1)
    assert _evaluation_device(model, RewardFitConfig(device="cpu")) == torch.device("cpu")  # where it trained

    moves = []

    def out_of_memory(device):
        moves.append(torch.device(device))
        if torch.device(device).type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return model

    monkeypatch.setattr(model, "to", out_of_memory)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    assert _evaluation_device(model, RewardFitConfig(device="cuda")) == torch.device("cpu")
    assert moves == [torch.device("cuda", 0), torch.device("cpu")]  # tried this rank's GPU, then back in one piece


def test_a_several_gpu_fit_without_a_snapshot_pins_the_newest_label_for_every_rank(labeled, monkeypatch):
    from labeling.models import Label

    make_label(make_comparison(labeled), UserFactory(username="c-rgpus3", role="contractor"), chosen_index=1)
    started = []
    monkeypatch.setattr(ranks_service, "execute_ranks", lambda **kwargs: started.append(kwargs["run"]))
    run = run_create(project=labeled, kind="fit_reward", base_model="tiny", seed=1, product={"gpus": 2},
                     enqueue=False)
    assert run_execute(run_id=run.id) == TrainingRun.Status.FINISHED  # the ranks' part stubbed out
    newest = Label.objects.order_by("-id").first().id
    run.refresh_from_db()
    assert run.product["label_snapshot"] == {"max_label_id": newest}
    assert run.report["reward_data"]["max_label_id"] == newest
    assert started and started[0].product["label_snapshot"]["max_label_id"] == newest
