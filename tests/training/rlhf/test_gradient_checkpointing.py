"""Gradient checkpointing: the trained trunks recompute their blocks in the backward pass (the block forwards
run twice), with the same values and gradients; rollouts without gradients and cached scoring are untouched."""
import copy

import torch

from training.rlhf import models
from training.rlhf.build import build_trainer
from training.rlhf.config import PPOConfig
from training.rlhf.models import PolicyWithValue, RewardModel, build_tiny, enable_gradient_checkpointing
from training.rlhf.sampling import generate
from training.rlhf.tokenizer import pad_left, pad_right

PAD = 257


def _block_calls(lm) -> list[int]:
    calls = [0]
    for block in models.transformer_blocks(lm):
        forward = block.forward

        def counted(*args, _forward=forward, **kwargs):
            calls[0] += 1
            return _forward(*args, **kwargs)

        block.forward = counted
    return calls


def _grads(module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


def test_policy_forward_recomputes_blocks_with_the_same_values_and_gradients():
    lm, _ = build_tiny(seed=1, n_layer=3)
    plain, checkpointed = PolicyWithValue(lm), PolicyWithValue(copy.deepcopy(lm))
    checkpointed.load_state_dict(plain.state_dict())
    calls = _block_calls(checkpointed.lm)  # counts the checkpointed forwards (wrapped inside the counter)
    enable_gradient_checkpointing(checkpointed.lm)
    ids = torch.randint(0, 256, (4, 12))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    out = []
    for policy in (plain, checkpointed):
        logits, values = policy(ids, mask, response_start=6)
        (logits.float().logsumexp(-1).sum() + values.sum()).backward()
        out.append((logits.detach(), values.detach(), _grads(policy)))
    assert calls[0] == 2 * 3  # each of the 3 blocks: once forward, once again in the backward pass
    torch.testing.assert_close(out[1][0], out[0][0])
    torch.testing.assert_close(out[1][1], out[0][1])
    assert out[1][2].keys() == out[0][2].keys()
    for name in out[0][2]:
        torch.testing.assert_close(out[1][2][name], out[0][2][name], atol=1e-6, rtol=1e-5, msg=name)


def test_packed_reward_path_checkpoints_its_layers_with_the_same_gradients(monkeypatch):
    lm, _ = build_tiny(seed=2, n_layer=3)
    plain = RewardModel(lm, head_seed=3)
    checkpointed = RewardModel(copy.deepcopy(lm), head_seed=3)
    enable_gradient_checkpointing(checkpointed.lm)
    calls = [0]
    layer = models._packed_layer
    monkeypatch.setattr(models, "_packed_layer", lambda *a: (calls.__setitem__(0, calls[0] + 1), layer(*a))[1])
    queries, query_mask = pad_left([[5, 6, 7, 8], [9, 10]], 5, pad_id=PAD)
    flat, flat_mask = pad_right([[1, 2, 3], [4], [5, 6], []], 4, pad_id=PAD)
    responses, response_mask = flat.view(2, 2, 4), flat_mask.view(2, 2, 4)
    grads = []
    for model in (plain, checkpointed):
        calls[0] = 0
        rewards = model.score_k(queries, query_mask, responses, response_mask)
        (rewards * torch.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
        grads.append((rewards.detach(), _grads(model), calls[0]))
    assert grads[0][2] == 2 and grads[1][2] == 4  # 2 packed layers before the last, recomputed once more
    torch.testing.assert_close(grads[1][0], grads[0][0])
    for name in grads[0][1]:
        torch.testing.assert_close(grads[1][1][name], grads[0][1][name], atol=1e-6, rtol=1e-5, msg=name)


def test_rollouts_without_gradients_are_unchanged():
    lm, _ = build_tiny(seed=0)
    queries = torch.tensor([[257, 257, 10, 11], [1, 2, 3, 4]])
    mask = (queries != 257).long()
    before = generate(lm, queries, mask, 6, 0.7, torch.Generator().manual_seed(1))
    calls = _block_calls(lm)
    enable_gradient_checkpointing(lm)
    after = generate(lm, queries, mask, 6, 0.7, torch.Generator().manual_seed(1), decoding="dynamic")
    assert torch.equal(before.responses, after.responses)
    assert calls[0] == 6 * len(models.transformer_blocks(lm))  # one call per token and block: no recompute
    static = generate(lm, queries, mask, 6, 0.7, torch.Generator().manual_seed(1), decoding="static")
    assert torch.equal(before.responses, static.responses)  # the static cache runs the blocks' modules, no grad


def test_a_ppo_run_with_gradient_checkpointing_takes_the_same_steps():
    torch.manual_seed(0)
    config = dict(total_episodes=16, batch_size=8, query_length=4, response_length=4, device="cpu",
                  whiten_rewards=True, seed=3)
    metrics = []
    for on in (False, True):
        trainer = build_trainer(PPOConfig(**config, gradient_checkpointing=on))
        metrics.append([trainer.step() for _ in range(2)])
    for plain, checkpointed in zip(*metrics):
        for key in ("objective/score", "ppo/loss/policy", "ppo/loss/value", "objective/kl"):
            assert abs(plain[key] - checkpointed[key]) <= 1e-5 * (1 + abs(plain[key])), key
