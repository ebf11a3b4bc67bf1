"""PPO under FSDP2 (strategy "fsdp"): 2 CPU processes (gloo) shard each transformer block of the policy and of
a separate value model, and train exactly as DDP does (same metrics and weights within fp32 rounding); the
checkpoint is a whole model (from_pretrained) and a resumed run continues as the uninterrupted one."""

import json
import os

import torch
import torch.distributed as torch_dist

from tests.training.rlhf.ranks import free_port, spawn_ranks
from training.rlhf.checkpoint import latest_checkpoint
from training.rlhf.config import ConfigError, PPOConfig
from training.rlhf.models import PolicyWithValue, RewardModel, build_tiny, transformer_blocks
from training.rlhf.ppo import PPOTrainer
from training.rlhf.tokenizer import pad_left



def _trainer(strategy: str, out_dir: str, total: int = 48) -> PPOTrainer:
    lm, tokenizer = build_tiny(seed=0)
    ref, _ = build_tiny(seed=0)
    rm = RewardModel(build_tiny(seed=1)[0], head_seed=1).requires_grad_(False)
    q, qm = pad_left([[97 + i % 26] * 6 for i in range(64)], 8, tokenizer.pad_token_id)
    config = PPOConfig(query_length=8, response_length=8, batch_size=16, total_episodes=total, lr=1e-3, device="cpu",
                       seed=5, value_model="separate", reward="rm", strategy=strategy, micro_batch_size=4,
                       checkpoint_dir=os.path.join(out_dir, f"ckpt-{strategy}"), save_every=1, keep_checkpoints=5)
    policy = PolicyWithValue.with_value_from_reward_model(lm, rm)
    return PPOTrainer(config, policy, ref, torch.no_grad()(rm.score), q, qm, tokenizer)


def _full_weights(trainer: PPOTrainer) -> list[float]:
    from training.rlhf import distributed as dist

    state = dist.full_model_state(trainer.policy) if trainer.fsdp else trainer.policy.state_dict()
    if not state:  # gathered to rank 0 only
        return []
    flat = torch.cat([state[k].detach().float().flatten().cpu() for k in sorted(state)])
    return [flat.double().sum().item(), flat.double().abs().sum().item()]


def worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    report = {}
    for strategy in ("ddp", "fsdp"):
        trainer = _trainer(strategy, out_dir)
        result = trainer.train()
        params = list(trainer.policy.parameters())
        report[strategy] = {"metrics": result.metrics, "weights": _full_weights(trainer),
                            "checkpoint": str(result.checkpoint) if result.checkpoint else None,
                            "sharded": sum(type(p).__name__ == "DTensor" for p in params), "params": len(params),
                            "local": sum(p.to_local().numel() if type(p).__name__ == "DTensor" else p.numel()
                                         for p in params)}
        if strategy == "fsdp":  # after a no-grad pass every block is sharded again (a root block would stay whole)
            trainer.rollout()
            blocks = [*transformer_blocks(trainer.policy.lm), *transformer_blocks(trainer.policy.value_model.lm)]
            report[strategy]["whole_after_rollout"] = sum(
                not block._get_fsdp_state()._fsdp_param_group.is_sharded for block in blocks)
    # Resume the FSDP run from its first checkpoint: the last two updates repeat exactly.
    resumed = _trainer("fsdp", out_dir)
    shared = [sorted(n for n in os.listdir(os.path.join(out_dir, "ckpt-fsdp")) if n.startswith("step-"))[0]
              if rank == 0 else None]
    torch_dist.broadcast_object_list(shared, src=0)
    resumed.load_checkpoint(os.path.join(out_dir, "ckpt-fsdp", shared[0]))
    report["resumed"] = {"metrics": resumed.train().metrics, "weights": _full_weights(resumed),
                         "from": shared[0]}
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(report, f)
    torch_dist.destroy_process_group()


def _close(a: float, b: float, tol: float = 1e-4) -> bool:
    return abs(a - b) <= tol * (1 + abs(a) + abs(b))


def test_fsdp_trains_as_ddp_does_and_resumes_exactly(tmp_path):
    spawn_ranks(worker, (2, free_port(), str(tmp_path)))
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["fsdp"]["metrics"] == r1["fsdp"]["metrics"] and r1["fsdp"]["weights"] == []  # gathered on rank 0
    ddp, fsdp = r0["ddp"], r0["fsdp"]
    # Every block of the policy and of the value model is sharded: each rank holds about half of those weights.
    assert ddp["sharded"] == 0 and fsdp["sharded"] >= 2 * 2 * 12  # 2 trunks × 2 blocks × 12 tensors (GPT-2)
    assert fsdp["whole_after_rollout"] == 0  # gathered for their own call only, not held through the rollout
    assert fsdp["local"] < 0.9 * ddp["local"]
    assert len(fsdp["metrics"]) == len(ddp["metrics"]) == 3
    for a, b in zip(ddp["metrics"], fsdp["metrics"]):
        for key in ("objective/score", "objective/kl", "ppo/loss/policy", "ppo/loss/value", "ppo/val/mean"):
            assert _close(a[key], b[key]), (key, a[key], b[key])
    assert all(_close(a, b) for a, b in zip(ddp["weights"], fsdp["weights"])), (ddp["weights"], fsdp["weights"])
    # The checkpoint is a whole model: from_pretrained loads it as one process.
    saved, _ = PolicyWithValue.from_pretrained(latest_checkpoint(tmp_path / "ckpt-fsdp") / "policy")
    state = saved.state_dict()
    flat = torch.cat([state[k].float().flatten() for k in sorted(state)]).double()
    assert _close(flat.sum().item(), fsdp["weights"][0]) and _close(flat.abs().sum().item(), fsdp["weights"][1])
    # Resumed from step 1: steps 2 and 3 as the uninterrupted run's.
    resumed = r0["resumed"]
    assert resumed["from"] == "step-00000001" and len(resumed["metrics"]) == 2
    for a, b in zip(fsdp["metrics"][1:], resumed["metrics"]):
        assert _close(a["objective/score"], b["objective/score"], 1e-6) and _close(a["ppo/loss/total"],
                                                                                  b["ppo/loss/total"], 1e-6)
    assert all(_close(a, b, 1e-6) for a, b in zip(fsdp["weights"], resumed["weights"]))


def test_an_unknown_strategy_is_refused():
    try:
        PPOConfig(strategy="zero3").validate()
    except ConfigError as error:
        assert error.fields == {"strategy": ["strategy must be one of ('ddp', 'fsdp'), got 'zero3'"]}
    else:
        raise AssertionError("strategy 'zero3' passed")
