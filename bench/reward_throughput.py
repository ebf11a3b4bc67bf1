"""Reward-model fitting throughput: our `training.rlhf.reward_model.fit` vs TRL's `RewardTrainer`, K=2.

Both sides: the same tiny GPT-2 config, the same pre-tokenised pairs (query + response ids, same
lengths), one epoch, the same batch of pairs per step, Adam with linear decay, fp32 on CPU, no
gradient checkpointing, the same torch thread count. Ours shares each query's forward pass between
its K samples (``RewardModel.score_k``: packed rows on GPT-2), runs with both normalisation steps
(``normalize_before``, ``normalize``) and the validation split off (TRL does none of them) and is
timed over the whole ``fit`` call (model load and tokenisation included); TRL is timed over
``trainer.train()`` (its tokenisation happens before, in the trainer's constructor). Each side runs
in its own process, ``--repeats`` times, alternating; medians of pairs/s and of pairs per
CPU-second (steadier on a shared machine) are compared.

    python bench/reward_throughput.py --trl-python /tmp/trl-venv/bin/python

Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ppo_throughput import peak_rss_mib, rss_mib  # noqa: E402


def pairs_for(args) -> list[tuple[list[int], list[int], list[int]]]:
    """(query, chosen, rejected) ids: lowercase bytes, the chosen one holding more '#'."""
    import torch

    generator = torch.Generator().manual_seed(0)
    out = []
    for _ in range(args.pairs):
        query = torch.randint(97, 123, (args.query_length,), generator=generator).tolist()
        chosen = torch.randint(97, 123, (args.response_length,), generator=generator)
        rejected = torch.randint(97, 123, (args.response_length,), generator=generator)
        chosen[: 1 + int(torch.randint(4, (1,), generator=generator))] = ord("#")
        out.append((query, chosen.tolist(), rejected.tolist()))
    return out


def run_ours(args) -> dict:
    import torch

    from training.rlhf.config import RewardFitConfig
    from training.rlhf.data import Comparison
    from training.rlhf.models import build_tiny, save_lm
    from training.rlhf.reward_model import fit

    torch.set_num_threads(args.threads)
    comparisons = [Comparison(query=q, samples=[c, r], best=0) for q, c, r in pairs_for(args)]
    # The bench shape goes through a saved folder: the same from_pretrained path a hub id takes.
    folder = tempfile.mkdtemp(prefix="rm-bench-model-")
    save_lm(*build_tiny(seed=0, n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head), folder)
    config = RewardFitConfig(
        model=folder,
        query_length=args.query_length,
        response_length=args.response_length,
        batch_size=args.batch,
        lr=1e-4,
        epochs=1,
        valid_fraction=0.0,
        normalize_before=False,
        normalize="none",
        device="cpu",
        log_every=10_000,
    )

    baseline = rss_mib()
    started, cpu_started = time.perf_counter(), time.process_time()
    result = fit(config, comparisons)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "side": "ours",
        "pairs": args.pairs,
        "seconds": elapsed,
        "pairs_per_s": args.pairs / elapsed,
        "pairs_per_cpu_s": args.pairs / cpu,
        "train_accuracy": result.metrics["train/accuracy"],
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_train_mib": baseline,
    }


def run_trl(args) -> dict:
    import torch
    import trl
    from datasets import Dataset
    from tokenizers import Tokenizer, models
    from transformers import GPT2ForSequenceClassification, PreTrainedTokenizerFast
    from trl import RewardConfig, RewardTrainer

    from training.rlhf.models import build_tiny

    torch.set_num_threads(args.threads)
    lm, _ = build_tiny(seed=0, n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head)
    config = lm.config
    config.num_labels = 1
    model = GPT2ForSequenceClassification(config)
    model.transformer.load_state_dict(lm.transformer.state_dict())
    vocab = {f"<{i}>": i for i in range(256)} | {"<eos>": 256, "<pad>": 257}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<pad>")),
        eos_token="<eos>",
        pad_token="<pad>",
    )
    rows = pairs_for(args)
    dataset = Dataset.from_dict(
        {"chosen_ids": [q + c for q, c, _ in rows], "rejected_ids": [q + r for q, _, r in rows]}
    )
    reward_config = RewardConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-rm-bench-"),
        per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=1,
        num_train_epochs=1,
        learning_rate=1e-4,
        lr_scheduler_type="linear",
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        logging_steps=10_000,
        disable_tqdm=True,
        max_length=None,
        dataloader_num_workers=0,
        seed=1,
    )
    trainer = RewardTrainer(model=model, args=reward_config, train_dataset=dataset, processing_class=tokenizer)
    baseline = rss_mib()
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.train()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "side": f"trl {trl.__version__} RewardTrainer",
        "pairs": args.pairs,
        "seconds": elapsed,
        "pairs_per_s": args.pairs / elapsed,
        "pairs_per_cpu_s": args.pairs / cpu,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_train_mib": baseline,
    }


def spawn(python: str, side: str, args) -> dict:
    cmd = [python, __file__, "--side", side] + [
        f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("side", "trl_python", "repeats")
    ]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "TRL_EXPERIMENTAL_SILENCE": "1",
    }
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{side} run failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def report(result: dict) -> None:
    print(
        f"  {result['side']:<28} {result['pairs_per_s']:8.1f} pairs/s  ({result['pairs']} pairs in "
        f"{result['seconds']:.1f} s; {result['pairs_per_cpu_s']:.1f} pairs per CPU-second)  "
        f"peak RSS {result['peak_rss_mib']:.0f} MiB "
        f"(before training {result['rss_before_train_mib']:.0f} MiB)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--trl-python", default="/tmp/trl-venv/bin/python")
    parser.add_argument("--pairs", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--query-length", type=int, default=16)
    parser.add_argument("--response-length", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="runs per side, alternating; medians are compared")
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-embd", type=int, default=64)
    parser.add_argument("--n-head", type=int, default=4)
    args = parser.parse_args()
    if args.side:
        sys.path.insert(0, str(REPO))
        result = run_trl(args) if args.side == "trl" else run_ours(args)
        print("RESULT " + json.dumps(result))
        return 0
    print(
        f"Reward fitting throughput, K=2, CPU fp32, {args.threads} thread(s): GPT-2 n_layer={args.n_layer} "
        f"n_embd={args.n_embd}, {args.pairs} pairs, batch {args.batch}, query {args.query_length} + response "
        f"{args.response_length} tokens, 1 epoch"
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
    ours, theirs = (statistics.median(r["pairs_per_s"] for r in runs[side]) for side in ("ours", "trl"))
    ours_cpu, theirs_cpu = (statistics.median(r["pairs_per_cpu_s"] for r in runs[side]) for side in ("ours", "trl"))
    print(
        f"  median of {args.repeats}: ours {ours:.1f}, trl {theirs:.1f} pairs/s; "
        f"speed-up {ours / theirs:.2f}x (target >= 1.5x)"
    )
    # On a shared machine wall time swings with the neighbours' load; CPU time much less.
    print(
        f"  per CPU-second, median of {args.repeats}: ours {ours_cpu:.1f}, trl {theirs_cpu:.1f}; "
        f"{ours_cpu / theirs_cpu:.2f}x;  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
