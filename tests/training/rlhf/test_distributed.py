"""The PPO trainer under DDP: 2 CPU processes (gloo) split each batch, average gradients, agree on
metrics, and only rank 0 writes the checkpoint (holding both ranks' RNG state)."""

import json
import os

import torch
import torch.distributed as torch_dist

from tests.training.rlhf.ranks import free_port, spawn_ranks
from training.rlhf.checkpoint import latest_checkpoint
from training.rlhf.config import PPOConfig
from training.rlhf.models import PolicyWithValue, build_tiny
from training.rlhf.ppo import PPOTrainer
from training.rlhf.rewards import programmatic_reward
from training.rlhf.tokenizer import pad_left



def worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    lm, tokenizer = build_tiny(seed=0)
    ref, _ = build_tiny(seed=0)
    q, qm = pad_left([[97 + i % 26] * 6 for i in range(64)], 8, tokenizer.pad_token_id)
    config = PPOConfig(
        query_length=8,
        response_length=8,
        batch_size=16,
        total_episodes=32,
        lr=1e-3,
        device="cpu",
        seed=5,
        checkpoint_dir=os.path.join(out_dir, "ckpt"),
    )
    trainer = PPOTrainer(config, PolicyWithValue(lm), ref, programmatic_reward("lowercase"), q, qm, tokenizer)
    first_rollout = trainer.rollout()  # a peek at this rank's share; training below starts afresh
    trainer = PPOTrainer(
        config, PolicyWithValue(build_tiny(seed=0)[0]), ref, programmatic_reward("lowercase"), q, qm, tokenizer
    )
    result = trainer.train()
    weights = torch.cat([p.detach().flatten() for p in trainer.policy.parameters()])
    report = {
        "metrics": result.metrics,
        "weight_sum": weights.double().sum().item(),
        "weight_abs_sum": weights.double().abs().sum().item(),
        "rows": first_rollout.responses.shape[0],
        "responses": first_rollout.responses.tolist(),
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
    }
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(report, f)
    torch_dist.destroy_process_group()


def test_two_process_gloo_training_stays_in_sync(tmp_path):
    spawn_ranks(worker, (2, free_port(), str(tmp_path)))
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["rows"] == r1["rows"] == 8  # each rank samples half of the 16-episode batch
    assert r0["responses"] != r1["responses"]  # from different per-rank seeds
    assert r0["weight_sum"] == r1["weight_sum"] and r0["weight_abs_sum"] == r1["weight_abs_sum"]
    assert r0["metrics"] == r1["metrics"] and len(r0["metrics"]) == 2
    assert r0["checkpoint"] is not None and r1["checkpoint"] is None
    state = torch.load(latest_checkpoint(tmp_path / "ckpt") / "trainer_state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
