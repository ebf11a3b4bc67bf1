"""PPO throughput: our `training.rlhf.ppo` vs TRL's `trl.experimental.ppo.PPOTrainer`, same work.

Both sides: the same tiny GPT-2 config (policy, frozen reference, reward model and a separate value
model initialised from it; TRL has no shared-head option), the same batch, query and response
lengths, 4 PPO epochs, 1 minibatch, fixed KL coefficient, no truncation, fp32 on CPU, no gradient
checkpointing, the same torch thread count. Each side runs in its own process (TRL from its own
venv, since trl is not a project dependency) and reports episodes/s over the training call, the
share of that time spent generating, and peak RSS.

    python bench/ppo_throughput.py --trl-python /tmp/trl-venv/bin/python
    (make the TRL venv with: python -m venv /tmp/trl-venv; a .pth pointing at .venv's site-packages;
     /tmp/trl-venv/bin/pip install trl==1.12.0 -- the last release that ships trl.experimental.ppo)

Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    """Current resident set size of this process (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def queries_for(args, vocab_low=97, vocab_high=123):
    import torch

    generator = torch.Generator().manual_seed(0)
    return torch.randint(vocab_low, vocab_high, (max(args.batch * 4, 256), args.query_length), generator=generator)


def run_ours(args) -> dict:
    import torch

    from training.rlhf.config import PPOConfig
    from training.rlhf.models import PolicyWithValue, RewardModel, build_tiny
    from training.rlhf.ppo import PPOTrainer

    torch.set_num_threads(args.threads)
    shape = dict(n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head)
    lm, tokenizer = build_tiny(seed=0, **shape)
    ref, _ = build_tiny(seed=0, **shape)
    rm = RewardModel(build_tiny(seed=1, **shape)[0], head_seed=1).requires_grad_(False)
    if args.value == "separate":
        policy = PolicyWithValue.with_value_from_reward_model(lm, rm)
    else:
        policy = PolicyWithValue(lm)
    queries = queries_for(args)
    config = PPOConfig(
        query_length=args.query_length,
        response_length=args.response_length,
        batch_size=args.batch,
        total_episodes=args.batch * args.steps,
        noptepochs=4,
        nminibatches=1,
        lr=1e-5,
        kl_coef=0.05,
        value_model=args.value,
        reward="bench-reward-model",
        whiten_rewards=True,
        device="cpu",
        seed=1,
    )
    trainer = PPOTrainer(config, policy, ref, torch.no_grad()(rm.score), queries, torch.ones_like(queries), tokenizer)
    baseline = rss_mib()
    started = time.perf_counter()
    result = trainer.train()
    elapsed = time.perf_counter() - started
    generate_s = sum(m["time/generate_s"] for m in result.metrics)
    return {
        "side": f"ours ({args.value} value)",
        "episodes": args.batch * args.steps,
        "seconds": elapsed,
        "episodes_per_s": args.batch * args.steps / elapsed,
        "generate_share": generate_s / elapsed,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_train_mib": baseline,
        "params": sum(p.numel() for p in lm.parameters()),
    }


def run_trl(args) -> dict:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    import trl
    import trl.experimental.ppo.ppo_trainer as trl_ppo
    from datasets import Dataset
    from tokenizers import Tokenizer, models
    from transformers import GPT2ForSequenceClassification, PreTrainedTokenizerFast
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    from training.rlhf.models import build_tiny

    torch.set_num_threads(args.threads)
    shape = dict(n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head)
    lm, _ = build_tiny(seed=0, **shape)
    ref, _ = build_tiny(seed=0, **shape)
    rm_lm, _ = build_tiny(seed=1, **shape)
    config = rm_lm.config
    config.num_labels = 1
    reward_model = GPT2ForSequenceClassification(config)
    reward_model.transformer.load_state_dict(rm_lm.transformer.state_dict())
    value_model = GPT2ForSequenceClassification(config)
    value_model.load_state_dict(reward_model.state_dict())

    # An HF tokenizer over the same 258 ids, built in memory (nothing downloaded).
    vocab = {f"<{i}>": i for i in range(256)} | {"<eos>": 256, "<pad>": 257}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<pad>")),
        eos_token="<eos>",
        pad_token="<pad>",
        padding_side="left",
    )
    queries = queries_for(args)
    dataset = Dataset.from_dict({"input_ids": queries.tolist()})

    generate_s = [0.0]
    original = trl_ppo.batch_generation

    def timed_batch_generation(*a, **k):
        started = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            generate_s[0] += time.perf_counter() - started

    trl_ppo.batch_generation = timed_batch_generation
    out_dir = tempfile.mkdtemp(prefix="trl-ppo-bench-")
    ppo_config = PPOConfig(
        output_dir=out_dir,
        per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=1,
        num_mini_batches=1,
        num_ppo_epochs=4,
        total_episodes=args.batch * args.steps,
        response_length=args.response_length,
        temperature=1.0,
        learning_rate=1e-5,
        kl_coef=0.05,
        kl_estimator="k1",
        whiten_rewards=True,
        stop_token=None,
        missing_eos_penalty=None,
        local_rollout_forward_batch_size=args.batch,
        num_sample_generations=0,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=10_000,
        disable_tqdm=True,
        seed=1,
        dataloader_num_workers=0,
    )
    trainer = PPOTrainer(
        args=ppo_config,
        processing_class=tokenizer,
        model=lm,
        ref_model=ref,
        reward_model=reward_model,
        train_dataset=dataset,
        value_model=value_model,
    )
    baseline = rss_mib()
    started = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - started
    return {
        "side": f"trl {trl.__version__} (separate value)",
        "episodes": args.batch * args.steps,
        "seconds": elapsed,
        "episodes_per_s": args.batch * args.steps / elapsed,
        "generate_share": generate_s[0] / elapsed,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_train_mib": baseline,
        "params": sum(p.numel() for p in lm.parameters()),
    }


def child(args) -> int:
    sys.path.insert(0, str(REPO))
    result = run_trl(args) if args.side == "trl" else run_ours(args)
    print("RESULT " + json.dumps(result))
    return 0


def spawn(python: str, side: str, args) -> dict:
    cmd = (
        [python, __file__, "--side", side]
        + [
            f"--{k.replace('_', '-')}={v}"
            for k, v in vars(args).items()
            if k not in ("side", "trl_python", "repeats", "value")
        ]
        + [f"--value={'separate' if side == 'trl' else args.value}"]
    )
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{side} run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def report(result: dict) -> None:
    print(
        f"  {result['side']:<32} {result['episodes_per_s']:8.1f} episodes/s  "
        f"({result['episodes']} episodes in {result['seconds']:.1f} s)  "
        f"generating {100 * result['generate_share']:4.1f}%  "
        f"peak RSS {result['peak_rss_mib']:.0f} MiB (before training {result['rss_before_train_mib']:.0f} MiB)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--trl-python", default="/tmp/trl-venv/bin/python", help="python of a venv with trl installed")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--query-length", type=int, default=16)
    parser.add_argument("--response-length", type=int, default=24)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="runs per side, alternating; medians are compared")
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-embd", type=int, default=64)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument(
        "--value",
        choices=["separate", "shared"],
        default="separate",
        help="our value function (TRL always uses a separate value model)",
    )
    args = parser.parse_args()
    if args.side:
        return child(args)
    print(
        f"PPO throughput, CPU fp32, {args.threads} thread(s): GPT-2 n_layer={args.n_layer} n_embd={args.n_embd}, "
        f"batch {args.batch}, query {args.query_length}, response {args.response_length}, 4 epochs, "
        f"{args.steps} updates, fixed KL"
    )
    have_trl = Path(args.trl_python).exists()
    runs: dict[str, list[dict]] = {"ours": [], "trl": []}
    for _ in range(args.repeats):  # alternate sides so load drifts on the machine hit both alike
        runs["ours"].append(spawn(sys.executable, "ours", args))
        report(runs["ours"][-1])
        if have_trl:
            runs["trl"].append(spawn(args.trl_python, "trl", args))
            report(runs["trl"][-1])
    if not have_trl:
        print(f"  TRL: no python at {args.trl_python}; comparison skipped")
        return 0
    ours, theirs = (statistics.median(r["episodes_per_s"] for r in runs[side]) for side in ("ours", "trl"))
    print(
        f"  median of {args.repeats}: ours {ours:.1f}, trl {theirs:.1f} episodes/s; "
        f"speed-up {ours / theirs:.2f}x (target >= 2x)"
    )
    return 0
    trl_result = spawn(args.trl_python, "trl", args)
    report(trl_result)
    print(f"  speed-up: {ours['episodes_per_s'] / trl_result['episodes_per_s']:.2f}x episodes/s (target >= 2x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
