"""Reward fitting over 2 CPU processes (gloo), strategies "ddp" and "fsdp", through the CLI as torchrun runs it:
the fit equals the one-process fit on the same data (metrics and saved weights within tolerance), every rank has
the same metrics, rank 0 alone writes the model, the metrics file and the summary; a stop asked on rank 0 ends both;
fp16-mixed with FSDP is refused on every rank.

Batches of 16 over 33 training rows (16, 16, 1) with micro-batches of 4: the last batch leaves rank 1 no row (it
runs a stand-in of weight 0), and the 3 held-out rows split 2 / 1.
"""

import contextlib
import io
import json
import os

import torch
import torch.distributed as torch_dist

from tests.training.rlhf.helpers import marker_comparisons
from tests.training.rlhf.ranks import free_port, spawn_ranks
from training.rlhf.config import ConfigError, RewardFitConfig
from training.rlhf.data import load_comparisons
from training.rlhf.models import RewardModel, load_lm
from training.rlhf.reward_model import fit

STRATEGIES = ("ddp", "fsdp")
# Metrics and weights: |a - b| <= TOL * (1 + |a| + |b|). Two ranks add the batch's rows in another order, reduce
# gradients over ranks, and FSDP scores through the key/value-cache path instead of the packed one: fp32 rounding,
# which three Adam steps at lr 1e-3 keep far below this.
TOL = 1e-5



def _config(**overrides) -> RewardFitConfig:
    base = dict(model="tiny", query_length=8, response_length=16, batch_size=16, micro_batch_size=4, lr=1e-3,
                log_every=1, normalize_samples=16, sample_batch_size=8, seed=1, device="cpu")
    return RewardFitConfig(**{**base, **overrides})


def _write_comparisons(path) -> None:
    with open(path, "w") as f:
        for c in marker_comparisons(36):  # 3 held out (valid_fraction 0.1), 33 to train on
            f.write(json.dumps({"query": c.query, **{f"sample{i}": s for i, s in enumerate(c.samples)},
                                "best": c.best}) + "\n")


def worker(rank: int, world_size: int, ports: list[int], out_dir: str) -> None:
    # One port per process group: each CLI run destroys its group, and a rank that starts the next one early must
    # not find the last one's store.
    os.environ.update(MASTER_ADDR="127.0.0.1", WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from training.rlhf import cli

    report: dict = {"saves": 0}
    real_fit, real_save = cli.fit, RewardModel.save_pretrained

    def recording_fit(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        report[current]["metrics"] = result.metrics
        report[current]["history"] = len(result.history)
        report[current]["main"] = result.main
        return result

    def recording_save(self, *args, **kwargs):
        report["saves"] += 1
        return real_save(self, *args, **kwargs)

    cli.fit, RewardModel.save_pretrained = recording_fit, recording_save
    for current, port in zip(STRATEGIES, ports):
        os.environ["MASTER_PORT"] = str(port)
        report[current] = {}
        config = dict(vars(_config(strategy=current)), comparisons_path=os.path.join(out_dir, "comparisons.jsonl"),
                      output_dir=os.path.join(out_dir, current), metrics_path=os.path.join(out_dir, f"{current}.jsonl"))
        path = os.path.join(out_dir, f"{current}-rank{rank}.json")
        with open(path, "w") as f:
            json.dump(config, f)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            cli.fit_reward_main([path])  # destroys the process group at its end
        report[current]["printed"] = printed.getvalue()
    cli.fit, RewardModel.save_pretrained = real_fit, real_save

    # A stop asked on rank 0 before the second step; rank 1's callback would never stop, and is never asked.
    os.environ["MASTER_PORT"] = str(ports[-1])
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return rank == 0 and calls["n"] >= 2

    logged = []
    comparisons = load_comparisons(os.path.join(out_dir, "comparisons.jsonl"))
    result = fit(_config(strategy="fsdp", normalize_before=False), comparisons, on_log=logged.append,
                 should_stop=should_stop)
    report["stop"] = {"stopped": result.stopped, "history": len(result.history), "logged": len(logged),
                      "asked": calls["n"]}
    try:  # fp16's loss scaler cannot unscale sharded gradients: refused on every rank, naming the field
        fit(_config(strategy="fsdp", precision="fp16-mixed"), comparisons)
    except ConfigError as error:
        report["fp16_fsdp"] = sorted(error.fields)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(report, f)
    torch_dist.destroy_process_group()


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOL * (1 + abs(a) + abs(b))


def test_two_ranks_fit_as_one_process_and_rank_0_alone_writes(tmp_path):
    _write_comparisons(tmp_path / "comparisons.jsonl")
    spawn_ranks(worker, (2, [free_port() for _ in range(3)], str(tmp_path)))
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    alone_logs = []
    alone = fit(_config(), load_comparisons(tmp_path / "comparisons.jsonl"), on_log=alone_logs.append)
    alone_state = alone.model.state_dict()
    assert r0["saves"] == 2 and r1["saves"] == 0  # one model per strategy, by rank 0
    for strategy in STRATEGIES:
        a, b = r0[strategy], r1[strategy]
        assert a["main"] and not b["main"]
        assert a["metrics"] == b["metrics"] and a["history"] == b["history"] == len(alone.history) == 4
        assert b["printed"] == "" and a["printed"].count("fit_reward: done") == 1
        # rank 0 alone wrote the metrics file: each log once (step 0 = normalize_before, then steps 1-3)
        lines = [json.loads(line) for line in (tmp_path / f"{strategy}.jsonl").read_text().splitlines()]
        assert [m["step"] for m in lines] == [m["step"] for m in alone_logs] == [0, 1, 2, 3]
        assert set(a["metrics"]) == set(alone.metrics)
        for key, value in alone.metrics.items():
            assert _close(a["metrics"][key], value), (strategy, key, a["metrics"][key], value)
        for logged, expected in zip(lines[1:], alone_logs[1:]):
            assert _close(logged["train/loss"], expected["train/loss"]), (strategy, logged, expected)
            assert logged["train/accuracy"] == expected["train/accuracy"]
        # The saved model (gathered from the shards under FSDP) loads as one process and has the same weights.
        saved, _ = RewardModel.from_pretrained(tmp_path / strategy)
        state = saved.state_dict()
        assert set(state) == set(alone_state)
        for key, value in alone_state.items():
            diff = (state[key].double() - value.double()).abs().max().item()
            assert diff <= TOL * (1 + value.double().abs().max().item()), (strategy, key, diff)
    # Training moved the weights well beyond TOL, so the comparisons above tell a fitted model from a fresh one.
    fresh = RewardModel(load_lm("tiny")[0], head_seed=1).state_dict()
    assert (alone_state["head.weight"] - fresh["head.weight"]).abs().max().item() > 100 * TOL
    # The stop on rank 0 ended both ranks before step 2; rank 1 never asked its own callback nor logged.
    s0, s1 = r0["stop"], r1["stop"]
    assert s0["stopped"] and s1["stopped"] and s0["history"] == s1["history"] == 1
    assert s0["logged"] == 1 and s1["logged"] == 0 and s0["asked"] == 2 and s1["asked"] == 0
    assert r0["fp16_fsdp"] == r1["fp16_fsdp"] == ["precision"]


def test_an_unknown_strategy_is_refused():
    try:
        RewardFitConfig(strategy="zero3").validate()
    except ConfigError as error:
        assert error.fields == {"strategy": ["strategy must be one of ('ddp', 'fsdp'), got 'zero3'"]}
    else:
        raise AssertionError("strategy 'zero3' passed")
