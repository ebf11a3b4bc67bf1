"""PPO on a GPU: ours (`training.rlhf.ppo`) vs TRL's `trl.experimental.ppo`, phase times, MFU and roofline.

The same work on both sides as `ppo_throughput.py`, at GPT-2 shapes built from their configs with
random weights (``--shape tiny|gpt2|gpt2-large``, vocabulary 50,257 for the GPT-2 shapes): policy,
frozen reference, reward model and a separate value model initialised from the reward model, query
64, response 24, ``--batch`` episodes a step, 4 PPO epochs, 1 minibatch, fixed KL, no truncation, no
gradient checkpointing. Ours runs with ``precision=bf16-mixed`` (autocast over fp32 master weights;
the frozen reference and reward model held in bf16, as ``build_policy`` does), TRL with ``bf16=True``
(accelerate's autocast over fp32 weights). Sides: ``ours-separate``, ``ours-shared`` (the value head
on the policy trunk, 2019) and ``trl`` (separate value only). Each side runs in its own process,
``--warmup`` steps then ``--steps`` timed steps, with ``torch.cuda.synchronize`` around each phase:

* generate: the sampling loop (ours: `sampling.generate`; TRL: `batch_generation`)
* scoring: the other no-grad forwards of the rollout (reference log-probs, values, reward)
* update: the PPO epochs (ours: `PPOTrainer.update`; TRL: from its first `accelerator.accumulate`
  to the step's end, its metrics included)
* other: the rest of the step (query draw, rewards and advantages, bookkeeping; TRL's two
  ``gc.collect()`` calls a step, timed apart as ``gc`` in the JSON)

FLOPs and bytes: see ``ppo_flops.py`` (one formula for both sides). Prints one table; ``--json``
writes every figure.

    python bench/ppo_gpu.py --shape gpt2 --batch 64                      # on a CUDA machine, all sides
    python bench/ppo_gpu.py --device cpu --shape tiny --trl-python /tmp/trl-venv/bin/python   # smoke run

Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ppo_flops import SHAPES, Shape, generation_bytes, ppo_step_flops  # noqa: E402
from ppo_throughput import peak_rss_mib  # noqa: E402

sys.path.insert(0, str(REPO))
from training.rlhf.config import DECODINGS  # noqa: E402  (no torch: the driver process stays light)

SIDES = ("ours-separate", "ours-shared", "trl")


# --- shared by both sides ------------------------------------------------------------------------------


def dims(args) -> dict:
    shape = dict(SHAPES[args.shape])
    shape["vocab"] = args.vocab or shape["vocab"]
    return shape


def special_ids(vocab: int) -> tuple[int, int]:
    """(eos, pad): the last two ids; queries and the rest of the vocabulary come before them."""
    return vocab - 2, vocab - 1


def build_lm(args, seed: int):
    """A randomly initialised GPT2LMHeadModel of the shape, dropout off, built on the device."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from training.rlhf.models import disable_dropout

    d = dims(args)
    eos, pad = special_ids(d["vocab"])
    config = GPT2Config(
        vocab_size=d["vocab"],
        n_positions=1024,
        n_embd=d["n_embd"],
        n_layer=d["n_layer"],
        n_head=d["n_head"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        activation_function="gelu_pytorch_tanh",  # GPT-2's tanh GELU, one fused kernel (as build_tiny)
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    torch.manual_seed(seed)
    with torch.device(args.device):
        lm = GPT2LMHeadModel(config)
    return disable_dropout(lm)


def queries_for(args):
    import torch

    eos, _ = special_ids(dims(args)["vocab"])
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, eos, (max(args.batch * 4, 256), args.query_length), generator=generator)


def sync(args) -> None:
    if args.device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


class Phases:
    """Seconds by phase, per step, measured with the device synchronised at each boundary."""

    def __init__(self, args) -> None:
        self.args = args
        self.steps: list[dict[str, float]] = []
        self.current: dict[str, float] = {}

    def timed(self, phase: str, fn):
        def wrapper(*a, **k):
            sync(self.args)
            started = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                sync(self.args)
                self.current[phase] = self.current.get(phase, 0.0) + time.perf_counter() - started

        return wrapper

    def end_step(self, seconds: float) -> None:
        self.current["step"] = seconds
        self.steps.append(self.current)
        self.current = {}


def summarise(args, side: str, phases: Phases, setup_s: float) -> dict:
    import torch

    timed = phases.steps[args.warmup :]
    n = len(timed)
    mean = {k: sum(s.get(k, 0.0) for s in timed) / n for k in ("generate", "scoring", "update", "step")}
    mean["other"] = mean["step"] - mean["generate"] - mean["scoring"] - mean["update"]
    mean["gc"] = sum(s.get("gc", 0.0) for s in timed) / n  # TRL's gc.collect() calls (inside "other")
    cuda = args.device.startswith("cuda")
    return {
        "side": side,
        "shape": args.shape,
        "vocab": dims(args)["vocab"],
        "batch": args.batch,
        "query_length": args.query_length,
        "response_length": args.response_length,
        "epochs": args.epochs,
        "precision": args.precision,
        "micro_batch": args.micro_batch,
        "decoding": args.decoding if side != "trl" else None,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "steps_timed": n,
        "setup_s": setup_s,
        "seconds": mean,
        "per_step": phases.steps,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "peak_rss_mib": peak_rss_mib(),
        "torch": torch.__version__,
    }


# --- ours ----------------------------------------------------------------------------------------------


def run_ours(args, value: str) -> dict:
    import torch

    import training.rlhf.ppo as ppo_module
    from training.rlhf.config import PPOConfig
    from training.rlhf.models import PolicyWithValue, RewardModel
    from training.rlhf.ppo import PPOTrainer
    from training.rlhf.precision import frozen_dtype

    started = time.perf_counter()
    lm, ref = build_lm(args, seed=0), build_lm(args, seed=0)
    rm = RewardModel(build_lm(args, seed=1), head_seed=1).to(args.device).requires_grad_(False)
    policy = PolicyWithValue.with_value_from_reward_model(lm, rm) if value == "separate" else PolicyWithValue(lm)
    rm.lm.to(frozen_dtype(args.precision))  # as build_policy holds a frozen reward model
    rm.head.to(frozen_dtype(args.precision))
    eos, pad = special_ids(dims(args)["vocab"])
    tokenizer = SimpleNamespace(eos_token_id=eos, pad_token_id=pad, vocab_size=dims(args)["vocab"])
    queries = queries_for(args)
    config = PPOConfig(
        query_length=args.query_length,
        response_length=args.response_length,
        batch_size=args.batch,
        total_episodes=args.batch * (args.warmup + args.steps),
        noptepochs=args.epochs,
        nminibatches=1,
        lr=1e-5,
        kl_coef=0.05,
        value_model=value,
        reward="bench-reward-model",
        whiten_rewards=True,
        device=args.device,
        precision=args.precision,
        micro_batch_size=args.micro_batch,
        forward_batch_size=args.forward_batch,
        decoding=args.decoding,
        seed=1,
    )
    trainer = PPOTrainer(config, policy, ref, torch.no_grad()(rm.score), queries, torch.ones_like(queries), tokenizer)
    phases = Phases(args)
    # Phase timers: generate (inside rollout), the rest of rollout + score = scoring, update.
    ppo_module.generate = phases.timed("generate", ppo_module.generate)
    rollout = phases.timed("rollout", trainer.rollout)
    trainer.rollout = rollout
    trainer.score = phases.timed("score", trainer.score)
    trainer.update = phases.timed("update", trainer.update)
    sync(args)
    setup_s = time.perf_counter() - started
    for _ in range(args.warmup + args.steps):
        if args.device.startswith("cuda") and len(phases.steps) == args.warmup:
            torch.cuda.reset_peak_memory_stats()  # the timed steps' peak (the warm-up's is the same or higher)
        sync(args)
        t0 = time.perf_counter()
        trainer.step()
        sync(args)
        phases.current["scoring"] = (
            phases.current.pop("rollout") - phases.current["generate"] + phases.current.pop("score")
        )
        phases.end_step(time.perf_counter() - t0)
    return summarise(args, f"ours-{value}", phases, setup_s)


# --- TRL -----------------------------------------------------------------------------------------------


def run_trl(args) -> dict:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    import trl
    import trl.experimental.ppo.ppo_trainer as trl_ppo
    from datasets import Dataset
    from tokenizers import Tokenizer, models
    from transformers import GPT2ForSequenceClassification, PreTrainedTokenizerFast, TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    started = time.perf_counter()
    lm, ref = build_lm(args, seed=0), build_lm(args, seed=0)
    rm_lm = build_lm(args, seed=1)
    config = rm_lm.config
    config.num_labels = 1
    with torch.device(args.device):
        reward_model = GPT2ForSequenceClassification(config)
        value_model = GPT2ForSequenceClassification(config)
    reward_model.transformer.load_state_dict(rm_lm.transformer.state_dict())
    value_model.load_state_dict(reward_model.state_dict())
    del rm_lm

    vocab_size = dims(args)["vocab"]
    eos, pad = special_ids(vocab_size)
    vocab = {f"<{i}>": i for i in range(eos)} | {"<eos>": eos, "<pad>": pad}  # in memory, nothing downloaded
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<pad>")),
        eos_token="<eos>",
        pad_token="<pad>",
        padding_side="left",
    )
    dataset = Dataset.from_dict({"input_ids": queries_for(args).tolist()})

    phases = Phases(args)
    trl_ppo.batch_generation = phases.timed("generate", trl_ppo.batch_generation)
    trl_ppo.get_reward = phases.timed("scoring", trl_ppo.get_reward)  # values and reward, no grad
    forward, scoring_forward = trl_ppo.forward, phases.timed("scoring", trl_ppo.forward)
    trl_ppo.forward = lambda *a, **k: forward(*a, **k) if torch.is_grad_enabled() else scoring_forward(*a, **k)
    trl_ppo.gc = SimpleNamespace(collect=phases.timed("gc", gc.collect))  # part of "other"; reported apart
    marks = {}

    class StepClock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            sync(args)
            marks["step_start"] = time.perf_counter()

        def on_step_end(self, *a, **k):
            sync(args)
            now = time.perf_counter()
            phases.current["update"] = now - marks.pop("update_start")
            phases.end_step(now - marks["step_start"])
            if args.device.startswith("cuda") and len(phases.steps) == args.warmup:
                torch.cuda.reset_peak_memory_stats()
            marks["step_start"] = now

    ppo_config = PPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-ppo-gpu-bench-"),
        per_device_train_batch_size=args.micro_batch or args.batch,
        gradient_accumulation_steps=args.batch // (args.micro_batch or args.batch),
        num_mini_batches=1,
        num_ppo_epochs=args.epochs,
        total_episodes=args.batch * (args.warmup + args.steps),
        response_length=args.response_length,
        temperature=1.0,
        learning_rate=1e-5,
        kl_coef=0.05,
        kl_estimator="k1",
        whiten_rewards=True,
        stop_token=None,
        missing_eos_penalty=None,
        local_rollout_forward_batch_size=args.forward_batch or args.batch,
        num_sample_generations=0,
        bf16=args.precision == "bf16-mixed",
        fp16=False,
        gradient_checkpointing=False,
        use_cpu=args.device == "cpu",
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
        callbacks=[StepClock()],
    )
    accumulate = trainer.accelerator.accumulate

    def marked_accumulate(*a, **k):
        if "update_start" not in marks:  # the step's first micro-batch: the update phase begins
            sync(args)
            marks["update_start"] = time.perf_counter()
        return accumulate(*a, **k)

    trainer.accelerator.accumulate = marked_accumulate
    sync(args)
    setup_s = time.perf_counter() - started
    trainer.train()
    result = summarise(args, "trl", phases, setup_s)
    result["trl"] = trl.__version__
    return result


# --- figures -------------------------------------------------------------------------------------------


def figures(result: dict, peak_tflops: float, peak_tbs: float) -> dict:
    """Episodes/s, tokens/s, MFU and the generation's roofline share from a side's result."""
    d = SHAPES[result["shape"]]
    shape = Shape(n_layer=d["n_layer"], n_embd=d["n_embd"], vocab=result["vocab"])
    B, Lq, T = result["batch"], result["query_length"], result["response_length"]
    seconds = result["seconds"]
    flops = ppo_step_flops(shape, B, Lq, T, result["epochs"], separate_value=result["side"] != "ours-shared")
    mixed = result["precision"] != "fp32"
    gen_bytes = generation_bytes(shape, B, Lq, T, weight_bytes=4, kv_bytes=2 if mixed else 4)
    on_gpu = result["peak_gpu_gib"] is not None
    out = {
        "episodes_per_s": B / seconds["step"],
        "tokens_per_s": B * (Lq + T) / seconds["step"],
        "generated_tokens_per_s": B * T / seconds["generate"] if seconds["generate"] else None,
        "step_tflop": flops.total / 1e12,
        "update_tflop": flops.update / 1e12,
        "achieved_tflops_step": flops.total / seconds["step"] / 1e12,
        "achieved_tflops_update": flops.update / seconds["update"] / 1e12,
        "generation_gb": gen_bytes / 1e9,
        "generation_tbs": gen_bytes / seconds["generate"] / 1e12 if seconds["generate"] else None,
    }
    out["mfu_update"] = out["achieved_tflops_update"] / peak_tflops if on_gpu else None
    out["mfu_step"] = out["achieved_tflops_step"] / peak_tflops if on_gpu else None
    out["roofline_generate"] = out["generation_tbs"] / peak_tbs if on_gpu and out["generation_tbs"] else None
    return out


def pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


HEADER = (
    f"{'side':<14} {'batch':>5} {'ep/s':>8} {'tok/s':>9} {'gen s':>7} {'score s':>7} {'update s':>8} "
    f"{'other s':>7} {'step s':>7} {'peak GiB':>8} {'MFU upd':>7} {'MFU step':>8} {'gen BW':>6}"
)


def row(result: dict, fig: dict) -> str:
    s = result["seconds"]
    peak = "n/a" if result["peak_gpu_gib"] is None else f"{result['peak_gpu_gib']:.1f}"
    return (
        f"{result['side']:<14} {result['batch']:>5} {fig['episodes_per_s']:>8.1f} {fig['tokens_per_s']:>9.0f} "
        f"{s['generate']:>7.3f} {s['scoring']:>7.3f} {s['update']:>8.3f} {s['other']:>7.3f} {s['step']:>7.3f} "
        f"{peak:>8} {pct(fig['mfu_update']):>7} {pct(fig['mfu_step']):>8} {pct(fig['roofline_generate']):>6}"
    )


def summarise_file(path: str) -> int:
    """A compact table of a --json file: one line a side, speed-ups over TRL at the same shape and batch."""
    results = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    if not results:
        print("no bench results")
        return 1
    trl = {(r["shape"], r["batch"]): r["figures"]["episodes_per_s"] for r in results if r["side"] == "trl"}
    print(f"{'shape':<11} {'side':<20} {'batch':>5} {'ep/s':>8} {'vs TRL':>6} {'step s':>7} {'peak GiB':>8} "
          f"{'MFU upd':>7} {'MFU step':>8} {'gen BW':>6}")
    for r in results:
        fig = r["figures"]
        base = trl.get((r["shape"], r["batch"]))
        speed = f"{fig['episodes_per_s'] / base:.2f}x" if base and r["side"] != "trl" else "-"
        peak = "n/a" if r["peak_gpu_gib"] is None else f"{r['peak_gpu_gib']:.1f}"
        side = r["side"] + ("" if r.get("decoding") in (None, "auto") else f"/{r['decoding']}")
        print(f"{r['shape']:<11} {side:<20} {r['batch']:>5} {fig['episodes_per_s']:>8.1f} {speed:>6} "
              f"{r['seconds']['step']:>7.3f} {peak:>8} {pct(fig['mfu_update']):>7} {pct(fig['mfu_step']):>8} "
              f"{pct(fig['roofline_generate']):>6}")
    return 0


# --- driver --------------------------------------------------------------------------------------------


def child(args) -> int:
    sys.path.insert(0, str(REPO))
    import torch

    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    result = run_trl(args) if args.side == "trl" else run_ours(args, args.side.split("-", 1)[1])
    print("RESULT " + json.dumps(result))
    return 0


def spawn(python: str, side: str, args) -> dict | str:
    skip = {"side", "sides", "trl_python", "json", "timeout", "summarise"}
    cmd = [python, __file__, "--side", side] + [
        f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in skip and v is not None
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TRL_EXPERIMENTAL_SILENCE": "1"}
    if args.device == "cpu":
        env["OMP_NUM_THREADS"] = str(args.threads)
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return f"timed out after {args.timeout} s"
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        print(proc.stderr[-3000:], file=sys.stderr)
        return f"failed (exit {proc.returncode}): {tail[0][:200]}"
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--sides", default=",".join(SIDES), help="comma-separated, from " + ", ".join(SIDES))
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="gpt2")
    parser.add_argument("--vocab", type=int, default=None, help="vocabulary size (default: the shape's)")
    parser.add_argument("--precision", choices=["fp32", "bf16-mixed"], default=None,
                        help="ours: precision; TRL: bf16=True for bf16-mixed (default: bf16-mixed on cuda, fp32 on cpu)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="rows per forward+backward (ours: micro_batch_size; TRL: per_device_train_batch_size)")
    parser.add_argument("--forward-batch", type=int, default=None,
                        help="rows per no-grad forward (ours: forward_batch_size; TRL: local_rollout_forward_batch_size)")
    parser.add_argument("--decoding", choices=DECODINGS, default="auto",
                        help="ours: how generation decodes (PPOConfig.decoding; auto = CUDA graph of a static cache)")
    parser.add_argument("--query-length", type=int, default=64)
    parser.add_argument("--response-length", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1, help="steps run before the timed ones")
    parser.add_argument("--steps", type=int, default=3, help="timed steps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on cpu")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak (H200 SXM: 989)")
    parser.add_argument("--peak-tbs", type=float, default=4.8, help="memory bandwidth peak, TB/s (H200: 4.8)")
    parser.add_argument("--trl-python", default=sys.executable, help="python that can import trl")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per side before it is given up")
    parser.add_argument("--json", default=None, help="append every side's figures to this JSON-lines file")
    parser.add_argument("--summarise", metavar="FILE", help="print the compact table of a --json file and exit")
    args = parser.parse_args()
    if args.summarise:
        return summarise_file(args.summarise)
    if args.precision is None:
        args.precision = "fp32" if args.device == "cpu" else "bf16-mixed"
    if args.side:
        return child(args)
    sides = [s for s in args.sides.split(",") if s]
    unknown = set(sides) - set(SIDES)
    if unknown:
        parser.error(f"unknown side(s): {', '.join(sorted(unknown))}")
    d = dims(args)
    print(
        f"PPO {args.shape} (L={d['n_layer']} d={d['n_embd']} V={d['vocab']}) on {args.device}, {args.precision}, "
        f"batch {args.batch}{f' (micro {args.micro_batch})' if args.micro_batch else ''}, query {args.query_length}, "
        f"response {args.response_length}, {args.epochs} epochs, {args.warmup} warm-up + {args.steps} timed steps; "
        f"peaks {args.peak_tflops:g} TFLOP/s, {args.peak_tbs:g} TB/s",
        flush=True,
    )
    print(HEADER, flush=True)
    failures = 0
    for side in sides:
        result = spawn(args.trl_python if side == "trl" else sys.executable, side, args)
        if isinstance(result, str):
            print(f"{side:<14} {args.batch:>5} {result}", flush=True)
            failures += 1
            continue
        fig = figures(result, args.peak_tflops, args.peak_tbs)
        print(row(result, fig), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps({**result, "figures": fig, "peak_tflops": args.peak_tflops,
                                    "peak_tbs": args.peak_tbs}) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
