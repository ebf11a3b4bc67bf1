"""A PPO run's online publishing: valid samples only, and the invalid share recorded at the step it published."""
import pytest
import torch

from labeling.models import Comparison, Query, Sample
from tests.factories import ProjectFactory
from tests.training.helpers import FAST_PPO, FAST_TASK
from training.models import RunMetric, TrainingRun
from training.services import run_create
from training.services.execute import run_execute

pytestmark = pytest.mark.django_db


def test_online_publishing_records_the_invalid_share_and_publishes_valid_samples_only():
    project = ProjectFactory(k=2)
    for i in range(4):
        Query.objects.create(project=project, context=f"the story number {i} begins", external_id=f"q{i}")
    online = {"n_queries": 4, "response_length": 6, "truncate_text": ".", "truncate_after": 0, "max_tries": 2}
    run = run_create(project=project, kind="ppo", base_model="tiny", seed=2, enqueue=False,
                     config={**FAST_PPO, "reward": "builtin:lowercase", "total_episodes": FAST_PPO["batch_size"]},
                     product={"publish_every": 1, "online_sample": online})
    assert run_execute(run_id=run.id) == TrainingRun.Status.FINISHED, TrainingRun.objects.get(id=run.id).error
    metrics = dict(RunMetric.objects.filter(run=run, step=1, key__startswith="sample/").values_list("key", "value"))
    published = Comparison.objects.filter(source_run=run, batch=f"run{run.id}-step1").count()
    # The untrained tiny model rarely writes "." (about 1 byte in 258): most draws are invalid.
    assert metrics["sample/invalid_share"] > 0.5 and metrics["sample/dropped_queries"] == 4 - published
    assert all("." in text for text in Sample.objects.filter(comparisons__source_run=run).values_list("text", flat=True))


def test_a_separate_value_model_trains_in_a_ppo_run(settings, tmp_path, monkeypatch):
    """The run service builds the value model from the frozen reward model; its copy is in the optimizer
    and every value tensor changes after one update (bf16-mixed, so the run's precision reaches the trainer)."""
    from training.rlhf.models import PolicyWithValue, RewardModel, build_tiny
    from training.services import checkpoint_record
    from training.services import ppo as ppo_service

    settings.ARTIFACTS_DIR = tmp_path
    project = ProjectFactory(k=2)
    for i in range(4):
        Query.objects.create(project=project, context=f"the story number {i} begins", external_id=f"q{i}")
    fit = run_create(project=project, kind="fit_reward", base_model="tiny", enqueue=False, config=dict(FAST_TASK))
    lm, tokenizer = build_tiny(seed=7)
    RewardModel(lm, head_seed=2).save_pretrained(tmp_path / "rm", tokenizer)
    TrainingRun.objects.filter(id=fit.id).update(status=TrainingRun.Status.FINISHED)
    checkpoint_record(run=fit, step=1, path=tmp_path / "rm", is_final=True)
    trainers = []

    class Recording(ppo_service.PPOTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            trainers.append(self)

    monkeypatch.setattr(ppo_service, "PPOTrainer", Recording)
    run = run_create(project=project, kind="ppo", base_model="tiny", reward_run=fit, seed=2, enqueue=False,
                     config={**FAST_PPO, "value_model": "separate", "precision": "bf16-mixed",
                             "total_episodes": FAST_PPO["batch_size"]})
    assert run_execute(run_id=run.id) == TrainingRun.Status.FINISHED, TrainingRun.objects.get(id=run.id).error
    (trainer,) = trainers
    value_params = list(trainer.policy.value_model.parameters())
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert value_params and all(p.requires_grad and id(p) in in_optimizer for p in value_params)
    start, _ = RewardModel.from_pretrained(tmp_path / "rm")
    final = TrainingRun.objects.get(id=run.id).checkpoints.get(is_final=True)
    saved, _ = PolicyWithValue.from_pretrained(final.path)
    initial = dict(start.named_parameters())
    changed = [n for n, p in saved.value_model.named_parameters() if not torch.equal(p, initial[n])]
    assert len(changed) == len(initial) == 30
    assert RunMetric.objects.filter(run=run, step=1, key="ppo/policy/logprob_mismatch").exists()


def test_a_ppo_run_out_of_memory_fails_naming_the_settings_and_keeps_its_checkpoint(monkeypatch):
    from training.models import Checkpoint
    from training.services import ppo as ppo_service

    project = ProjectFactory(k=2)
    for i in range(4):
        Query.objects.create(project=project, context=f"the story number {i} begins", external_id=f"q{i}")
    step = ppo_service.PPOTrainer.step
    calls = []

    def step_then_oom(self):
        calls.append(1)
        if len(calls) == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return step(self)

    monkeypatch.setattr(ppo_service.PPOTrainer, "step", step_then_oom)
    run = run_create(project=project, kind="ppo", base_model="tiny", seed=2, enqueue=False,
                     config={**FAST_PPO, "reward": "builtin:lowercase", "save_every": 1})
    assert run_execute(run_id=run.id) == TrainingRun.Status.FAILED
    error = TrainingRun.objects.get(id=run.id).error
    assert "out of accelerator memory during PPO update 2" in error
    assert "micro_batch_size" in error and "forward_batch_size" in error and "gradient_checkpointing" in error
    assert list(Checkpoint.objects.filter(run=run).values_list("step", flat=True)) == [1]
