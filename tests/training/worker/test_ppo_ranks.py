"""A PPO run asking for `gpus: 2`, through a real Celery worker: the worker starts it under torchrun (two gloo
ranks on this CPU machine), rank 0 reports to the database, the andon cord stops every rank within one step, and
a killed worker's run is reaped and resumed by the next worker from its checkpoint (still two ranks)."""
import time
from pathlib import Path

import pytest
import torch

from labeling.errors import InvalidInput
from labeling.models import Query
from training.models import Checkpoint, RunMetric, TrainingRun
from training.services import andon_pull, run_create, runs_reap
from tests.factories import ProjectFactory
from tests.training.conftest import wait_for
from tests.training.helpers import FAST_PPO

pytestmark = [pytest.mark.slow, pytest.mark.worker]
Status = TrainingRun.Status


def _project():
    project = ProjectFactory(k=2)
    for i in range(8):
        Query.objects.create(project=project, context=f"the story number {i} begins", external_id=f"q{i}")
    return project


def _config(steps: int, **extra) -> dict:
    return {**FAST_PPO, "reward": "builtin:lowercase", "total_episodes": FAST_PPO["batch_size"] * steps,
            "save_every": 1, **extra}


def _world_size(checkpoint: Checkpoint) -> int:
    return torch.load(Path(checkpoint.path) / "trainer_state.pt", weights_only=True)["world_size"]


def test_a_two_rank_run_reports_from_rank_0_and_stops_on_the_cord_within_one_step(live_worker):
    project = _project()
    done = run_create(project=project, kind="ppo", base_model="tiny", seed=3, config=_config(2, strategy="fsdp"),
                      product={"gpus": 2})
    live = run_create(project=project, kind="ppo", base_model="tiny", seed=4, config=_config(200),
                      product={"gpus": 2})
    live_worker.start()
    wait_for(lambda: TrainingRun.objects.get(id=done.id).status == Status.FINISHED, timeout=180,
             message="the FSDP run finished")
    assert sorted(RunMetric.objects.filter(run=done, key="objective/kl").values_list("step", flat=True)) == [1, 2]
    final = Checkpoint.objects.get(run=done, is_final=True)
    assert _world_size(final) == 2 and (Path(final.path) / "policy" / "model.safetensors").is_file()
    assert "ranks under torchrun" in live_worker.logs()

    wait_for(lambda: TrainingRun.objects.get(id=live.id).step >= 1, timeout=180, message="the DDP run training")
    step_at_pull = TrainingRun.objects.get(id=live.id).step
    andon_pull(run=live, reason="test: stop every rank", tripwire="test")
    wait_for(lambda: TrainingRun.objects.get(id=live.id).status == Status.STOPPED, timeout=90, message="stopped")
    live.refresh_from_db()
    assert live.step <= step_at_pull + 1
    assert _world_size(Checkpoint.objects.filter(run=live).order_by("-step").first()) == 2


def test_a_killed_workers_two_rank_run_is_reaped_and_resumed(live_worker):
    project = _project()
    steps = 12
    live_worker.extra_env["TRAINING_LEASE_SECONDS"] = "3"
    run = run_create(project=project, kind="ppo", base_model="tiny", seed=11, config=_config(steps),
                     product={"gpus": 2})
    first = live_worker.start()
    wait_for(lambda: Checkpoint.objects.filter(run=run, step__gte=2).exists(), interval=0.05, timeout=180,
             message="second checkpoint")
    live_worker.kill9(first)
    killed_at = TrainingRun.objects.get(id=run.id).step
    assert killed_at < steps
    time.sleep(2)
    import subprocess

    ranks = subprocess.run(["pgrep", "-f", f"training.ranks {run.id} "], capture_output=True, text=True).stdout
    assert ranks.strip() == "", "no rank outlives its worker"
    time.sleep(1.5)  # the lease runs out
    assert runs_reap()["requeued"] == [run.id]
    live_worker.start()
    wait_for(lambda: TrainingRun.objects.get(id=run.id).status == Status.FINISHED, timeout=240, message="finished")
    run.refresh_from_db()
    assert run.attempts == 2 and run.step == steps
    steps_seen = sorted(set(RunMetric.objects.filter(run=run, key="objective/kl").values_list("step", flat=True)))
    assert steps_seen == list(range(1, steps + 1))
    assert _world_size(Checkpoint.objects.get(run=run, is_final=True)) == 2


def test_gpus_beyond_the_workers_is_refused_at_round_start(researcher, settings):
    from tests.factories import UserFactory, make_comparison, make_label
    from training.services import round_start

    settings.TRAINING_WORKER_GPUS = 2
    project = ProjectFactory(k=2)
    make_label(make_comparison(project), UserFactory(username="c-gpus", role="contractor"), chosen_index=0)
    for gpus, message in ((4, "gpus must be a whole number from 1 to 2"),
                          (2, "per-rank batch|must divide")):
        project.training_settings = {"ppo": {"gpus": gpus, "batch_size": 9, "nminibatches": 1}}
        project.save()
        with pytest.raises(InvalidInput, match=message):
            round_start(project=project, user=researcher)
    project.training_settings = {"ppo": {"gpus": 2, "strategy": "fsdp", "publish_every": 1}}
    project.save()
    with pytest.raises(InvalidInput, match="publish_every .* not available with strategy fsdp"):
        round_start(project=project, user=researcher)
