"""Mock-sentiment experiment (issue 6): does the RLHF pipeline learn a preference it never sees directly?

A small byte-level GPT-2 is pretrained here on a plain-text corpus (Debian's ``fortunes`` by default);
queries are corpus entry prefixes, split into train and held-out queries. From the base we sample
best-of-4 comparisons and label them with a simulated labeler: VADER's compound score of each
response plus Bradley–Terry noise (softmax over the four scores at ``--bt-temperature``). One round
follows: fit a reward model (normalised on base samples), PPO against it; then, as the upper bound,
PPO directly on the true (noise-free) VADER score, normalised the same way. Evaluation on held-out
queries at temperature 0.7: win rate of each policy over the base as judged by noise-free VADER
(a tie counts half; the tie share is printed), mean true score, and KL from the base (nats per
response, Σ_t log π − log ρ on the policy's own samples, both at temperature 0.7). A label-count
curve refits the reward model on the first 500 / 1,000 labels (reward-model accuracy on the same
held-out comparisons; with ``--curve-ppo`` also a PPO run and win rate per point). The reward
model reads the mean of its head over the response's tokens (``--rm-readout last``: the 2019
last-token reward, which this small byte model does not learn: label accuracy stays at chance).

    .venv/bin/python bench/mock_sentiment.py                 # 5,000 labels (acceptance run)
    .venv/bin/python bench/mock_sentiment.py --quick         # miniature run, 1-2 minutes
    .venv/bin/python bench/mock_sentiment.py --corpus my.txt --labels 2000 --threads 2
    .venv/bin/python bench/mock_sentiment.py --threads 2 --seeds 0,1,2       # per seed, mean and 95% t interval
    .venv/bin/python bench/mock_sentiment.py --threads 2 --seed 1 --rm-only --rm-grid 6e-4:1,3e-4:2
    .venv/bin/python bench/mock_sentiment.py --threads 2 --beta-sweep 0.3,0.1,0.03,0.01

``--seeds`` runs the whole experiment once per seed (each under ``--out``/seed-N/; the seed also
seeds the base's pretraining, so each seed has its own cached base) and writes the per-seed rows
with the mean and a 95% Student t interval over seeds (n - 1 degrees of freedom) to
``results.json``. ``--rm-only`` stops after the reward model: the held-out pairwise accuracy of
each ``--rm-grid`` LR:EPOCHS setting fitted on the same labels (``rm_only-seed-N.json``).
``--beta-sweep`` fits one reward model, then runs PPO against it at each fixed beta (the adaptive
controller off) and reports per beta the KL, sqrt(KL), the reward model's mean score and the true
win rate over the base (``beta_sweep-seed-N.json``): the over-optimisation curve.

Prints each phase's wall and CPU time and the machine's load average (the figures depend on how
busy the machine is), and writes ``results.json``, ``score_vs_kl.png`` and ``rm_accuracy.png``
under ``bench/out/mock_sentiment/`` (``--out``). The pretrained base is cached under
``bench/out/mock_sentiment/base-<hash>/`` and reused while corpus and model settings are unchanged.
Pure library path: no Django, no Celery. The true score is ``labeling.scorers.score_sentiment``
(the `sentiment` simulated labeler's scorer, which imports no Django); the chooser is a batched torch
form of that labeler's softmax, kept so the seeded figures in the README stay reproducible.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from training.rlhf.config import READOUTS, PPOConfig, RewardFitConfig  # noqa: E402
from training.rlhf.data import Comparison  # noqa: E402
from training.rlhf.experiment import DEFAULT_CORPUS, MockExperimentConfig  # noqa: E402
from training.rlhf.models import PolicyWithValue, RewardModel, load_lm, response_logits  # noqa: E402
from training.rlhf.ppo import PPOTrainer  # noqa: E402
from training.rlhf.pretrain import pretrain, read_corpus, split_train_valid  # noqa: E402
from training.rlhf.reward_model import encode_comparisons, evaluate, fit  # noqa: E402
from training.rlhf.rewards import fit_normalization  # noqa: E402
from training.rlhf.sampling import generate, logprobs_of  # noqa: E402
from training.rlhf.tokenizer import pad_left  # noqa: E402

OUT = REPO / "bench" / "out" / "mock_sentiment"


# --- settings ----------------------------------------------------------------------------------


@dataclass
class Settings(MockExperimentConfig):
    """The shared settings (``training.rlhf.experiment``) plus the bench's; ``quick()`` is the miniature."""

    threads: int = 1
    bt_temperature: float = 0.1  # Bradley–Terry softmax temperature on compound scores in [-1, 1]
    # A labeler with a systematic bias (--label-bias): it chooses on VADER + weight × the share of this character in
    # the response; the truth stays VADER. "" = the plain sentiment labeler.
    label_bias_char: str = ""
    label_bias_weight: float = 0.0
    curve_ppo: bool = False  # also run PPO (and evaluate) at each curve point
    # --beta-sweep: evaluate the policy on held-out queries every this many PPO steps (0 = at the end only), on the
    # first checkpoint_queries evaluation queries: win rate, KL and reward-model score along each run.
    checkpoint_every: int = 0
    checkpoint_queries: int = 512
    sample_batch: int = 256

    @classmethod
    def quick(cls, **overrides) -> Settings:
        base = dict(
            pretrain_steps=400,
            pretrain_seconds=90.0,
            labels=400,
            curve=(100, 200),
            valid_comparisons=200,
            ppo_episodes=640,
            eval_queries=256,
            rm_epochs=2,
        )
        return cls(**{**base, **overrides})


# --- phases: timing ----------------------------------------------------------------------------


class Phases:
    """Wall and CPU seconds of each named phase, printed as they end."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float]] = {}

    def run(self, name: str, fn: Callable, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        row = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
        self.rows[name] = row
        print(f"[phase] {name}: wall {row['wall_s']:.1f} s, cpu {row['cpu_s']:.1f} s", flush=True)
        return out


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# --- corpus and queries ------------------------------------------------------------------------


def ensure_corpus(path: str) -> str:
    """The corpus path; Debian's ``fortunes`` is installed with apt when it is the default and
    missing and we are root (like config/devservices.ensure_chromium)."""
    if Path(path).exists() or path != DEFAULT_CORPUS:
        if not Path(path).exists():
            raise SystemExit(f"corpus {path} does not exist")
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit(f"{path} is missing: install Debian's 'fortunes' package or pass --corpus FILE")
    print("[bench] installing Debian's fortunes package (one time)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "fortunes"], check=False, env=env, stdout=subprocess.DEVNULL)
    if not Path(path).exists():
        raise SystemExit(f"installing fortunes did not create {path}; pass --corpus FILE")
    return path


def query_prefix(doc: str, n_bytes: int) -> str | None:
    """The first line's first ``n_bytes`` bytes cut back to the last space (so the last word is
    whole), or None when that leaves fewer than two words."""
    line = " ".join(doc.split())  # one line, single spaces
    raw = line.encode("utf-8")[:n_bytes].decode("utf-8", errors="ignore")
    if len(line) > len(raw):
        raw = raw[: raw.rfind(" ")] if " " in raw else ""
    raw = raw.strip()
    return raw if len(raw.split()) >= 2 else None


def make_queries(docs: Sequence[str], settings: Settings) -> tuple[list[list[int]], list[list[int]]]:
    """Train and held-out queries (token ids: eos + prefix bytes) from distinct documents."""
    from training.rlhf.tokenizer import ByteTokenizer

    tokenizer = ByteTokenizer()
    train_docs, held_docs = split_train_valid(docs, 0.15, settings.seed + 7)

    def prefixes(texts: Sequence[str]) -> set[str]:
        return {p for p in (query_prefix(d, settings.query_bytes) for d in texts) if p}

    train = prefixes(train_docs)
    held = prefixes(held_docs) - train  # documents can share a prefix: held-out queries are never trained on

    def encode(texts: set[str]) -> list[list[int]]:
        ordered = sorted(texts)
        random.Random(settings.seed).shuffle(ordered)
        return [[tokenizer.eos_token_id, *tokenizer.encode(p)] for p in ordered]

    return encode(train), encode(held)


# --- the simulated labeler ---------------------------------------------------------------------


class TrueScore:
    """Noise-free VADER compound score of response texts (the experiment's ground truth)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def texts(self, texts: Sequence[str]) -> torch.Tensor:
        # The `sentiment` simulated labeler's own scorer (Django-free), so bench and product agree.
        from labeling.scorers import score_sentiment

        return torch.tensor([score_sentiment(t) for t in texts], dtype=torch.float32)

    def ids(self, responses: torch.Tensor, response_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) ids -> (B,) scores; tokens outside ``response_mask`` are dropped."""
        rows = responses.tolist()
        masks = response_mask.tolist() if response_mask is not None else [[1] * len(r) for r in rows]
        return self.texts([self.tokenizer.decode([t for t, m in zip(r, mk) if m]) for r, mk in zip(rows, masks)])


def char_share(tokenizer, responses: torch.Tensor, char: str) -> torch.Tensor:
    """The share of ``char`` among each response's characters, (N, T) ids -> (N,) (0 for an empty text)."""
    texts = [tokenizer.decode(row) for row in responses.tolist()]
    return torch.tensor([t.count(char) / len(t) if t else 0.0 for t in texts], dtype=torch.float32)


def bradley_terry_choice(scores: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """Index chosen among K samples: softmax(score / temperature) (a noisy labeler). (N, K) -> (N,)."""
    return torch.multinomial(torch.softmax(scores / temperature, dim=-1), 1, generator=generator).squeeze(-1)


# --- sampling ----------------------------------------------------------------------------------


@torch.no_grad()
def sample_responses(
    model, queries: Sequence[Sequence[int]], settings: Settings, pad_id: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One response per query at ``settings.temperature``. Returns queries, query_mask (N, Lq),
    responses (N, T) and the temperature-scaled log-probs of the sampled tokens (N, T)."""
    q, qm = pad_left(queries, settings.query_length, pad_id)
    generator = torch.Generator().manual_seed(seed)
    out, logps = [], []
    for start in range(0, q.shape[0], settings.sample_batch):
        sl = slice(start, start + settings.sample_batch)
        gen = generate(model, q[sl], qm[sl], settings.response_length, settings.temperature, generator)
        out.append(gen.responses)
        logps.append(gen.logprobs)
    return q, qm, torch.cat(out), torch.cat(logps)


def sample_comparisons(
    base, tokenizer, queries: Sequence[Sequence[int]], n: int, settings: Settings, scorer: TrueScore, seed: int
) -> tuple[list[Comparison], torch.Tensor]:
    """``n`` best-of-K comparisons on ``queries`` (cycled), labeled by the Bradley–Terry chooser.
    Returns the comparisons (token ids) and the true scores (n, K)."""
    rows = [queries[i % len(queries)] for i in range(n) for _ in range(settings.k)]
    _, _, responses, _ = sample_responses(base, rows, settings, tokenizer.pad_token_id, seed)
    scores = scorer.ids(responses).view(n, settings.k)
    seen = scores + settings.label_bias_weight * char_share(tokenizer, responses, settings.label_bias_char).view(
        n, settings.k) if settings.label_bias_char else scores  # what a biased labeler chooses on
    best = bradley_terry_choice(seen, settings.bt_temperature, torch.Generator().manual_seed(seed + 1))
    resp = responses.view(n, settings.k, -1).tolist()
    comparisons = [
        Comparison(query=list(queries[i % len(queries)]), samples=resp[i], best=int(best[i])) for i in range(n)
    ]
    return comparisons, scores


# --- reward model ------------------------------------------------------------------------------


def fit_reward(base_dir: Path, comparisons: Sequence[Comparison], settings: Settings) -> RewardModel:
    config = RewardFitConfig(
        model=str(base_dir),
        query_length=settings.query_length,
        response_length=settings.response_length,
        batch_size=settings.rm_batch,
        lr=settings.rm_lr,
        epochs=settings.rm_epochs,
        readout=settings.rm_readout,
        valid_fraction=0.0,  # accuracy is measured on the fixed held-out comparisons instead
        normalize="samples",
        normalize_samples=512,
        temperature=settings.temperature,
        sample_batch_size=settings.sample_batch,
        seed=settings.seed + 1,
        device="cpu",
    )
    return fit(config, comparisons).model.requires_grad_(False).eval()


@torch.no_grad()
def reward_model_accuracy(
    model: RewardModel, comparisons: Sequence[Comparison], true_scores: torch.Tensor, settings: Settings, tokenizer
) -> dict[str, float]:
    """On held-out comparisons: ``label_accuracy`` (argmax = the labeler's pick; chance 1/K),
    ``true_best_accuracy`` (argmax = the noise-free best, ties excluded) and ``pairwise_accuracy``
    (sample pairs with different true scores ordered like VADER; chance 0.5), with ``n_pairs``."""
    data = encode_comparisons(comparisons, tokenizer, settings.query_length, settings.response_length)
    label = evaluate(model, data, torch.device("cpu"), settings.sample_batch)["valid/accuracy"]
    rewards = torch.cat(
        [
            model.score_k(
                data.queries[s : s + 64], data.query_mask[s : s + 64], data.samples[s : s + 64], data.sample_mask[s : s + 64]
            )
            for s in range(0, len(data), 64)
        ]
    )  # (N, K)
    top = true_scores.max(-1).values
    unique_best = (true_scores == top.unsqueeze(-1)).sum(-1) == 1
    true_best = (rewards.argmax(-1) == true_scores.argmax(-1))[unique_best].float().mean().item()
    i, j = torch.triu_indices(settings.k, settings.k, offset=1)
    dt = true_scores[:, i] - true_scores[:, j]
    dr = rewards[:, i] - rewards[:, j]
    differs = dt != 0
    pairwise = ((dt > 0) == (dr > 0))[differs].float()
    return {
        "label_accuracy": label,
        "true_best_accuracy": true_best,
        "pairwise_accuracy": pairwise.mean().item(),
        "n_pairs": int(differs.sum()),
        "n_comparisons": len(comparisons),
    }


# --- PPO ---------------------------------------------------------------------------------------


def run_ppo(
    base_dir: Path,
    reward_fn,
    train_queries: Sequence[Sequence[int]],
    settings: Settings,
    scorer: TrueScore,
    name: str,
    checkpoint: Callable[[int, PolicyWithValue], None] | None = None,
) -> tuple[PolicyWithValue, list[dict[str, float]]]:
    """PPO from the base against ``reward_fn``; each step's metrics gain ``true/score`` (VADER on
    the rollout's responses, noise-free). With ``settings.checkpoint_every``, ``checkpoint(step, policy)``
    runs after every that many steps and after the last (an evaluation with its own generator: the
    training run is the same with or without it)."""
    policy_lm, tokenizer = load_lm(base_dir)
    ref, _ = load_lm(base_dir)
    policy = PolicyWithValue(policy_lm)
    q, qm = pad_left(train_queries, settings.query_length, tokenizer.pad_token_id)
    true_scores: list[float] = []

    def scored(queries, query_mask, responses, response_mask):
        true_scores.append(scorer.ids(responses, response_mask).mean().item())
        return reward_fn(queries, query_mask, responses, response_mask)

    config = PPOConfig(
        policy_model=str(base_dir),
        reward=name,
        query_length=settings.query_length,
        response_length=settings.response_length,
        temperature=settings.temperature,
        total_episodes=settings.ppo_episodes,
        batch_size=settings.ppo_batch,
        nminibatches=settings.ppo_minibatches,
        noptepochs=4,
        lr=settings.ppo_lr,
        kl_coef=settings.kl_coef,
        adaptive_kl=settings.kl_target > 0,
        kl_target=settings.kl_target if settings.kl_target > 0 else None,
        kl_horizon=settings.kl_horizon,
        seed=settings.seed + 11,
        device="cpu",
    )
    trainer = PPOTrainer(config, policy, ref, scored, q, qm, tokenizer)
    history: list[dict[str, float]] = []

    def on_step(metrics):
        metrics["true/score"] = true_scores[-1]
        history.append(metrics)
        step = int(metrics["step"])
        if step == 1 or step % 10 == 0 or step == config.n_updates:
            print(
                f"  [{name}] step {step}/{config.n_updates} reward {metrics['objective/score']:+.3f}"
                f" true {metrics['true/score']:+.3f} kl {metrics['objective/kl']:.2f}"
                f" beta {metrics['objective/kl_coef']:.3f}",
                flush=True,
            )
        every = settings.checkpoint_every
        if checkpoint is not None and every and (step % every == 0 or step == config.n_updates):
            checkpoint(step, policy)
        return True

    trainer.train(on_step)
    return policy.eval(), history


def normalized_true_reward(scorer: TrueScore, base_scores: torch.Tensor):
    """VADER as a reward function, scaled like the reward model (mean 0, std 1 on base samples)."""
    gain, bias = fit_normalization(base_scores)

    def reward(queries, query_mask, responses, response_mask):
        return gain * scorer.ids(responses, response_mask) + bias

    return reward


# --- evaluation --------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_policy(
    policy: PolicyWithValue,
    ref,
    queries: Sequence[Sequence[int]],
    base_scores: torch.Tensor,
    settings: Settings,
    scorer: TrueScore,
    pad_id: int,
    seed: int,
    reward_model: RewardModel | None = None,
    tokenizer=None,
    examples: int = 0,
) -> dict[str, float]:
    """Win rate over the base's samples on the same held-out queries (noise-free VADER; a tie counts
    half), mean true score, and KL from the base (nats per response) on the policy's samples; with
    ``reward_model`` also its mean (normalised) score of those samples, ``rm_score``."""
    q, qm, responses, logps = sample_responses(policy, queries, settings, pad_id, seed)
    scores = scorer.ids(responses)
    ids = torch.cat([q, responses], 1)
    mask = torch.cat([qm, torch.ones_like(responses)], 1)
    ref_logps = torch.cat(
        [
            logprobs_of(
                response_logits(ref, ids[s : s + 256], mask[s : s + 256], q.shape[1]),
                responses[s : s + 256],
                settings.temperature,
            )
            for s in range(0, ids.shape[0], 256)
        ]
    )
    kl = (logps - ref_logps).sum(-1)
    wins = (scores > base_scores).float()
    ties = (scores == base_scores).float()
    outcome = wins + 0.5 * ties  # per query: 1, 1/2 or 0
    out = {
        "win_rate": outcome.mean().item(),
        "win_rate_se": (outcome.std() / len(queries) ** 0.5).item() if len(queries) > 1 else float("nan"),
        "strict_win_share": wins.mean().item(),
        "tie_share": ties.mean().item(),
        "mean_score": scores.mean().item(),
        "kl": kl.mean().item(),
        "n": len(queries),
    }
    if reward_model is not None:
        out["rm_score"] = reward_model_mean(reward_model, q, qm, responses)
    if examples:
        out["examples"] = [tokenizer.decode(r) for r in responses[:examples].tolist()]
    return out


@torch.no_grad()
def reward_model_mean(model: RewardModel, q: torch.Tensor, qm: torch.Tensor, responses: torch.Tensor) -> float:
    """The reward model's mean score of full-length responses (what PPO maximised, before the KL term)."""
    mask = torch.ones_like(responses)
    return torch.cat(
        [model.score(q[s : s + 256], qm[s : s + 256], responses[s : s + 256], mask[s : s + 256])
         for s in range(0, q.shape[0], 256)]
    ).mean().item()


def decode_examples(tokenizer, queries, responses, n=4) -> list[str]:
    return [tokenizer.decode(q) + " ⟶ " + tokenizer.decode(r) for q, r in zip(queries[:n], responses[:n])]


# --- the experiment ----------------------------------------------------------------------------


def pretrained_base(settings: Settings, out: Path, docs: Sequence[str], phases: Phases) -> tuple[Path, dict]:
    """A cached base LM for these settings and corpus, pretrained when missing."""
    key = json.dumps(
        {
            "corpus": settings.corpus,
            "n_docs": len(docs),
            "config": dataclasses.asdict(settings.pretrain_config(None)),
        },
        sort_keys=True,
    )
    folder = out / f"base-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    metrics_file = folder / "pretrain_metrics.json"
    if metrics_file.is_file():
        print(f"[bench] reusing the pretrained base {folder}", flush=True)
        return folder, json.loads(metrics_file.read_text())
    def on_log(metrics) -> None:
        if "valid/loss" in metrics:
            print(
                f"  [pretrain] step {int(metrics['step'])} valid bits/byte {metrics['valid/bits_per_byte']:.3f}"
                f" ({metrics['time/elapsed_s']:.0f} s)",
                flush=True,
            )

    result = phases.run("pretrain", pretrain, settings.pretrain_config(folder), documents=docs, on_log=on_log)
    return folder, result.metrics


@dataclass
class Prepared:
    """What every mode shares: the base, the queries, the labels, the held-out comparisons and the
    base's own evaluation samples (drawn in this order with these seeds, so the modes agree)."""

    phases: Phases
    base_dir: Path
    pretrain_metrics: dict
    base: object
    tokenizer: object
    scorer: TrueScore
    train_q: list
    held_q: list
    eval_q: list
    comparisons: list
    label_scores: torch.Tensor
    valid_comparisons: list
    valid_scores: torch.Tensor
    base_resp: torch.Tensor
    base_eval_scores: torch.Tensor
    label_agreement: float
    load_start: list
    wall_start: float
    cpu_start: float


def prepare(settings: Settings, out: Path, base_root: Path | None = None) -> Prepared:
    """Base (cached under ``base_root``, default ``out``), queries, labels and the base's evaluation samples."""
    hf_logging.disable_progress_bar()  # one "Loading weights" bar per load_lm otherwise
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    out.mkdir(parents=True, exist_ok=True)
    phases = Phases()
    load_start = load_average()
    wall_start, cpu_start = time.perf_counter(), time.process_time()

    docs = read_corpus(ensure_corpus(settings.corpus))
    base_dir, pretrain_metrics = pretrained_base(settings, base_root or out, docs, phases)
    base, tokenizer = load_lm(base_dir)
    scorer = TrueScore(tokenizer)
    train_q, held_q = make_queries(docs, settings)
    print(
        f"[bench] seed {settings.seed}: corpus {len(docs)} documents; queries {len(train_q)} train /"
        f" {len(held_q)} held out; base valid bits/byte {pretrain_metrics.get('valid/bits_per_byte', float('nan')):.3f}",
        flush=True,
    )
    held_valid = held_q[: settings.valid_comparisons]
    eval_q = held_q[: settings.eval_queries]

    comparisons, label_scores = phases.run(
        "sample+label", sample_comparisons, base, tokenizer, train_q, settings.labels, settings, scorer, settings.seed + 100
    )
    valid_comparisons, valid_scores = phases.run(
        "sample held-out comparisons",
        sample_comparisons,
        base,
        tokenizer,
        held_valid,
        len(held_valid),
        settings,
        scorer,
        settings.seed + 200,
    )
    # The base's own samples on the evaluation queries: what every policy is compared against.
    _, _, base_resp, _ = sample_responses(base, eval_q, settings, tokenizer.pad_token_id, settings.seed + 300)
    base_eval_scores = scorer.ids(base_resp)
    picked = label_scores.gather(-1, torch.tensor([c.best for c in comparisons]).unsqueeze(-1)).squeeze(-1)
    label_agreement = (picked == label_scores.max(-1).values).float().mean().item()
    print(
        f"[bench] base mean true score {base_eval_scores.mean():+.3f}, share neutral (0) "
        f"{(base_eval_scores == 0).float().mean():.2f}; labeler picks a top-scored sample {label_agreement:.2f}",
        flush=True,
    )
    for line in decode_examples(tokenizer, eval_q, base_resp.tolist()):
        print("  base:", json.dumps(line), flush=True)
    return Prepared(
        phases, base_dir, pretrain_metrics, base, tokenizer, scorer, train_q, held_q, eval_q, comparisons,
        label_scores, valid_comparisons, valid_scores, base_resp, base_eval_scores, label_agreement, load_start,
        wall_start, cpu_start,
    )


def _header(settings: Settings, ctx: Prepared) -> dict:
    return {
        "settings": dataclasses.asdict(settings),
        "machine": {"cpu_count": os.cpu_count(), "threads": settings.threads, "load_average_start": ctx.load_start},
        "pretrain": ctx.pretrain_metrics,
        "queries": {"train": len(ctx.train_q), "held_out": len(ctx.held_q)},
        "base": {
            "mean_score": ctx.base_eval_scores.mean().item(),
            "neutral_share": (ctx.base_eval_scores == 0).float().mean().item(),
        },
        "labeler_top_pick_share": ctx.label_agreement,
    }


def _finish(results: dict, ctx: Prepared) -> None:
    results["phases"] = ctx.phases.rows
    results["total"] = {"wall_s": time.perf_counter() - ctx.wall_start, "cpu_s": time.process_time() - ctx.cpu_start}
    results["machine"]["load_average_end"] = load_average()


def run_experiment(settings: Settings, out: Path = OUT, base_root: Path | None = None) -> dict:
    """The whole experiment; returns (and writes) the results dict."""
    ctx = prepare(settings, out, base_root)
    phases, base_dir, base, tokenizer, scorer = ctx.phases, ctx.base_dir, ctx.base, ctx.tokenizer, ctx.scorer
    train_q, eval_q, comparisons = ctx.train_q, ctx.eval_q, ctx.comparisons
    valid_comparisons, valid_scores, base_eval_scores = ctx.valid_comparisons, ctx.valid_scores, ctx.base_eval_scores
    base_resp = ctx.base_resp
    results: dict = {**_header(settings, ctx), "curve": []}

    # Reward models along the label-count curve (the full count last), then PPO on each.
    counts = sorted({n for n in settings.curve if n < settings.labels} | {settings.labels})
    rm_full = None
    for n in counts:
        rm = phases.run(f"reward fit ({n} labels)", fit_reward, base_dir, comparisons[:n], settings)
        acc = reward_model_accuracy(rm, valid_comparisons, valid_scores, settings, tokenizer)
        print(
            f"[bench] {n} labels: RM label accuracy {acc['label_accuracy']:.3f} (chance {1 / settings.k:.2f}),"
            f" true-best accuracy {acc['true_best_accuracy']:.3f}, pairwise {acc['pairwise_accuracy']:.3f}"
            f" on {acc['n_pairs']} pairs",
            flush=True,
        )
        point = {"labels": n, **acc}
        if n == settings.labels or settings.curve_ppo:
            policy, history = phases.run(
                f"ppo on reward model ({n} labels)",
                run_ppo,
                base_dir,
                torch.no_grad()(rm.score),
                train_q,
                settings,
                scorer,
                f"rm{n}",
            )
            ev = phases.run(
                f"evaluate ({n} labels)",
                evaluate_policy,
                policy,
                base,
                eval_q,
                base_eval_scores,
                settings,
                scorer,
                tokenizer.pad_token_id,
                settings.seed + 400,
            )
            point.update({"eval": ev, "trajectory": _trajectory(history)})
            print(f"[bench] tuned ({n} labels): {_fmt(ev)}", flush=True)
            if n == settings.labels:
                rm_full = (policy, ev)
        results["curve"].append(point)

    # Upper bound: PPO directly on the (normalised) true score.
    _, _, norm_resp, _ = sample_responses(base, train_q[:512], settings, tokenizer.pad_token_id, settings.seed + 500)
    direct_reward = normalized_true_reward(scorer, scorer.ids(norm_resp))
    direct, direct_history = phases.run(
        "ppo on true score", run_ppo, base_dir, direct_reward, train_q, settings, scorer, "direct"
    )
    direct_ev = phases.run(
        "evaluate direct",
        evaluate_policy,
        direct,
        base,
        eval_q,
        base_eval_scores,
        settings,
        scorer,
        tokenizer.pad_token_id,
        settings.seed + 400,
    )
    print(f"[bench] direct (upper bound): {_fmt(direct_ev)}", flush=True)

    tuned_policy, tuned_ev = rm_full
    base_mean = results["base"]["mean_score"]
    gain_ratio = (tuned_ev["mean_score"] - base_mean) / max(direct_ev["mean_score"] - base_mean, 1e-9)
    _, _, tuned_resp, _ = sample_responses(tuned_policy, eval_q[:4], settings, tokenizer.pad_token_id, 1)
    _, _, direct_resp, _ = sample_responses(direct, eval_q[:4], settings, tokenizer.pad_token_id, 1)
    results.update(
        {
            "tuned": tuned_ev,
            "direct": {**direct_ev, "trajectory": _trajectory(direct_history)},
            "score_gain_ratio": gain_ratio,
            "samples": {
                "base": decode_examples(tokenizer, eval_q, base_resp.tolist()),
                "tuned": decode_examples(tokenizer, eval_q, tuned_resp.tolist()),
                "direct": decode_examples(tokenizer, eval_q, direct_resp.tolist()),
            },
            "acceptance": {
                "win_rate_ge_0.8": tuned_ev["win_rate"] >= 0.8,
                "kl_le_10": tuned_ev["kl"] <= 10.0,
                "half_of_direct_gain": gain_ratio >= 0.5,
            },
        }
    )
    _finish(results, ctx)
    results["plots"] = write_plots(results, out)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print_summary(results, out)
    return results


def _trajectory(history: Sequence[dict[str, float]]) -> list[dict[str, float]]:
    keys = ("step", "objective/kl", "objective/score", "true/score", "objective/kl_coef")
    return [{k: round(float(m[k]), 5) for k in keys} for m in history]


def _fmt(ev: dict[str, float]) -> str:
    return (
        f"win rate {ev['win_rate']:.3f} (strict {ev['strict_win_share']:.3f}, ties {ev['tie_share']:.3f}),"
        f" mean score {ev['mean_score']:+.3f}, KL {ev['kl']:.2f} nats"
    )


def write_plots(results: dict, out: Path) -> dict[str, str]:
    """``score_vs_kl.png`` (training trajectories and held-out evaluations) and ``rm_accuracy.png``."""
    from training.rlhf.plots import AccuracySeries, PolicyPoint, plot_rm_accuracy, plot_score_vs_kl

    series = [(f"RM PPO, {p['labels']} labels", p["eval"], p["trajectory"]) for p in results["curve"] if "eval" in p]
    series.append(("PPO on true score", results["direct"], results["direct"]["trajectory"]))
    points = [PolicyPoint(label, ev["kl"], ev["mean_score"], [(t["objective/kl"], t["true/score"]) for t in traj])
              for label, ev, traj in series]
    curve = results["curve"]
    written = {
        "score_vs_kl": plot_score_vs_kl(out / "score_vs_kl.png", base_score=results["base"]["mean_score"],
                                        points=points, ylabel="true score (VADER compound)", kl_limit=10.0),
        "rm_accuracy": plot_rm_accuracy(out / "rm_accuracy.png", labels=[p["labels"] for p in curve], series=[
            AccuracySeries("labeler's pick", [p["label_accuracy"] for p in curve], 1 / results["settings"]["k"]),
            AccuracySeries("pairs ordered like VADER", [p["pairwise_accuracy"] for p in curve], 0.5)]),
    }
    return {name: _repo_relative(path) for name, path in written.items()}


def _repo_relative(path) -> str:
    """A written file's path as results.json keeps it: relative to the repository when inside it (results are
    copied into bench/results/ and read on other machines), else as given."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def print_summary(results: dict, out: Path) -> None:
    print("\n=== mock sentiment ===")
    print(f"base: bits/byte {results['pretrain'].get('valid/bits_per_byte', float('nan')):.3f}, mean score {results['base']['mean_score']:+.3f}")
    for p in results["curve"]:
        line = f"{p['labels']:>6} labels: RM label acc {p['label_accuracy']:.3f}, pairwise {p['pairwise_accuracy']:.3f}"
        if "eval" in p:
            line += f"; {_fmt(p['eval'])}"
        print(line)
    print(f"direct: {_fmt(results['direct'])}")
    print(f"score gain of tuned / direct: {results['score_gain_ratio']:.2f}")
    print(f"acceptance: {results['acceptance']}")
    print(f"total wall {results['total']['wall_s']:.0f} s, cpu {results['total']['cpu_s']:.0f} s;"
          f" load average {results['machine']['load_average_start']} -> {results['machine']['load_average_end']}"
          f" on {results['machine']['cpu_count']} cores, {results['settings']['threads']} torch thread(s)")
    print(f"wrote {out / 'results.json'} and {', '.join(results['plots'].values())}")


# --- reward model alone (--rm-only) ------------------------------------------------------------


def run_rm_only(settings: Settings, out: Path, grid: Sequence[tuple[float, int]], base_root: Path | None = None) -> dict:
    """Fit a reward model on all the labels for each (lr, epochs) of ``grid`` and measure it on the
    held-out comparisons; no PPO. Same base, labels and held-out comparisons as the full run of this
    seed, so a setting's accuracy here is the one the full run would get. Writes ``rm_only-seed-N.json``."""
    ctx = prepare(settings, out, base_root)
    results: dict = {**_header(settings, ctx), "rm_only": []}
    for lr, epochs in grid:
        trial = dataclasses.replace(settings, rm_lr=lr, rm_epochs=epochs)
        name = f"reward fit (lr {lr:g}, {epochs} epoch(s))"
        rm = ctx.phases.run(name, fit_reward, ctx.base_dir, ctx.comparisons, trial)
        acc = reward_model_accuracy(rm, ctx.valid_comparisons, ctx.valid_scores, trial, ctx.tokenizer)
        row = {"rm_lr": lr, "rm_epochs": epochs, **acc, "wall_s": ctx.phases.rows[name]["wall_s"]}
        results["rm_only"].append(row)
        print(f"[bench] seed {settings.seed}, RM lr {lr:g} x {epochs} epoch(s): pairwise {acc['pairwise_accuracy']:.3f},"
              f" label {acc['label_accuracy']:.3f}, true best {acc['true_best_accuracy']:.3f}", flush=True)
    _finish(results, ctx)
    path = out / f"rm_only-seed-{settings.seed}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\n=== reward model only, seed {settings.seed}, {settings.labels} labels, {results['rm_only'][0]['n_pairs']} held-out pairs ===")
    for row in results["rm_only"]:
        print(f"lr {row['rm_lr']:g} x {row['rm_epochs']}: pairwise {row['pairwise_accuracy']:.3f}, label"
              f" {row['label_accuracy']:.3f}, true best {row['true_best_accuracy']:.3f} ({row['wall_s']:.0f} s)")
    print(f"wrote {path}")
    return results


# --- over-optimisation: one reward model, PPO per fixed beta (--beta-sweep) --------------------


def overoptimisation_shape(rows: Sequence[dict]) -> dict:
    """Rows (one per beta, with ``kl``, ``rm_score``, ``win_rate``) ordered by KL: whether the reward
    model's score rises at every step, where the true win rate peaks and whether it falls after."""
    ordered = sorted(rows, key=lambda r: r["kl"])
    peak = max(range(len(ordered)), key=lambda i: ordered[i]["win_rate"])
    rm = [r["rm_score"] for r in ordered]
    return {
        "betas_by_kl": [r["beta"] for r in ordered],
        "rm_score_rises": all(b > a for a, b in zip(rm, rm[1:])),
        "peak_beta": ordered[peak]["beta"],
        "peak_kl": ordered[peak]["kl"],
        "peak_win_rate": ordered[peak]["win_rate"],
        "win_rate_falls_after_peak": peak < len(ordered) - 1,
        "drop_after_peak": ordered[peak]["win_rate"] - ordered[-1]["win_rate"],
    }


def checkpoint_shape(points: Sequence[dict], z: float = 3.0) -> dict:
    """One run's held-out checkpoints in training order (``step``, ``kl``, ``rm_score``, ``win_rate``,
    ``win_rate_se``): where the true win rate peaks and where it ends, and ``fall``: the largest fall of the
    true win rate from one checkpoint to a later one while the reward model's score rose between them (the
    over-optimisation shape; None when there is no such fall), with the standard error of that difference.
    ``classic`` when the fall exceeds ``z`` standard errors (3: the largest of many differences is picked, so
    2 would call noise a fall too often); ``recovered`` when the last checkpoint is back within ``z`` standard
    errors of where the fall started (the policy later found a way to please both judges)."""
    def se(a: dict, b: dict) -> float:
        return (a["win_rate_se"] ** 2 + b["win_rate_se"] ** 2) ** 0.5

    peak = max(range(len(points)), key=lambda i: points[i]["win_rate"])
    top, last = points[peak], points[-1]
    worst = None
    for i, a in enumerate(points):
        for b in points[i + 1:]:
            drop = a["win_rate"] - b["win_rate"]
            if b["rm_score"] > a["rm_score"] and drop > 0 and (worst is None or drop > worst[2]):
                worst = (a, b, drop)
    fall = None
    if worst is not None:
        a, b, drop = worst
        fall = {f"{end}_{key}": point[key] for end, point in (("from", a), ("to", b))
                for key in ("step", "kl", "win_rate", "rm_score")}
        fall.update(drop=drop, drop_se=se(a, b))
    classic = fall is not None and fall["drop"] > z * fall["drop_se"]
    start = worst[0] if worst else None
    return {
        "peak_step": top["step"],
        "peak_kl": top["kl"],
        "peak_win_rate": top["win_rate"],
        "peak_rm_score": top["rm_score"],
        "last_kl": last["kl"],
        "last_win_rate": last["win_rate"],
        "last_rm_score": last["rm_score"],
        "fall": fall,
        "classic": classic,
        "recovered": classic and last["win_rate"] >= start["win_rate"] - z * se(start, last),
    }


def run_beta_sweep(settings: Settings, out: Path, betas: Sequence[float], base_root: Path | None = None) -> dict:
    """One reward model (all the labels), then PPO against it at each fixed beta (no adaptive
    controller: it would pull every run towards the same KL target). Per beta: KL, sqrt(KL), the
    reward model's mean score and the true win rate over the base; with ``settings.checkpoint_every``
    the same along each run on the first ``checkpoint_queries`` evaluation queries (``checkpoints``,
    from the base at step 0, and their ``checkpoint_shape``). Writes ``beta_sweep-seed-N.json``."""
    ctx = prepare(settings, out, base_root)
    rm = ctx.phases.run("reward fit", fit_reward, ctx.base_dir, ctx.comparisons, settings)
    acc = reward_model_accuracy(rm, ctx.valid_comparisons, ctx.valid_scores, settings, ctx.tokenizer)
    q, qm = pad_left(ctx.eval_q, settings.query_length, ctx.tokenizer.pad_token_id)
    results: dict = {
        **_header(settings, ctx),
        "reward_model": acc,
        "base_rm_score": reward_model_mean(rm, q, qm, ctx.base_resp),
        "beta_sweep": [],
    }
    ck_q = ctx.eval_q[: settings.checkpoint_queries]
    ck_base = ctx.base_eval_scores[: len(ck_q)]
    ck_seed = settings.seed + 500

    def held_out(step: int, model) -> dict:
        start = time.perf_counter()
        ev = evaluate_policy(model, ctx.base, ck_q, ck_base, settings, ctx.scorer, ctx.tokenizer.pad_token_id,
                             ck_seed, rm, ctx.tokenizer, examples=3)
        return {"step": step, **ev, "sqrt_kl": max(ev["kl"], 0.0) ** 0.5, "wall_s": time.perf_counter() - start}

    at_base = held_out(0, ctx.base) if settings.checkpoint_every else None
    for beta in betas:
        fixed = dataclasses.replace(settings, kl_coef=beta, kl_target=0.0)
        points = [at_base] if at_base else []

        def checkpoint(step: int, policy, points=points, beta=beta) -> None:
            points.append(held_out(step, policy))  # its wall time counts in the PPO phase too
            p = points[-1]
            print(f"  [beta{beta:g}] checkpoint step {step}: win rate {p['win_rate']:.3f} ± {p['win_rate_se']:.3f},"
                  f" RM score {p['rm_score']:+.3f}, KL {p['kl']:.2f}; {json.dumps(p['examples'][0])}", flush=True)

        policy, history = ctx.phases.run(f"ppo (beta {beta:g})", run_ppo, ctx.base_dir, torch.no_grad()(rm.score),
                                         ctx.train_q, fixed, ctx.scorer, f"beta{beta:g}", checkpoint)
        ev = ctx.phases.run(f"evaluate (beta {beta:g})", evaluate_policy, policy, ctx.base, ctx.eval_q,
                            ctx.base_eval_scores, fixed, ctx.scorer, ctx.tokenizer.pad_token_id, settings.seed + 400, rm)
        row = {"beta": beta, **ev, "sqrt_kl": max(ev["kl"], 0.0) ** 0.5, "trajectory": _trajectory(history)}
        if points:
            row["checkpoints"] = points
            row["checkpoint_shape"] = checkpoint_shape(points)
        results["beta_sweep"].append(row)
        print(f"[bench] beta {beta:g}: {_fmt(ev)}, RM score {ev['rm_score']:+.3f}", flush=True)
    results["shape"] = overoptimisation_shape(results["beta_sweep"])
    if settings.checkpoint_every:
        results["plots"] = {"overoptimisation": _repo_relative(plot_checkpoints(results, out))}
    _finish(results, ctx)
    path = out / f"beta_sweep-seed-{settings.seed}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\n=== over-optimisation, seed {settings.seed}: RM pairwise {acc['pairwise_accuracy']:.3f};"
          f" base RM score {results['base_rm_score']:+.3f}, base VADER {results['base']['mean_score']:+.3f} ===")
    print("beta   | KL    | sqrt KL | RM score | VADER mean | win rate (ties)")
    for r in sorted(results["beta_sweep"], key=lambda r: r["kl"]):
        print(f"{r['beta']:<6g} | {r['kl']:5.2f} | {r['sqrt_kl']:7.2f} | {r['rm_score']:+8.3f} | {r['mean_score']:+10.3f} |"
              f" {r['win_rate']:.3f} ({r['tie_share']:.2f})")
    print(f"shape: {results['shape']}")
    for r in results["beta_sweep"]:
        if "checkpoints" not in r:
            continue
        print(f"\nbeta {r['beta']:g}, held-out checkpoints ({settings.checkpoint_queries} queries):")
        print("step | KL    | sqrt KL | RM score | win rate ± se")
        for p in r["checkpoints"]:
            print(f"{p['step']:4d} | {p['kl']:5.2f} | {p['sqrt_kl']:7.2f} | {p['rm_score']:+8.3f} |"
                  f" {p['win_rate']:.3f} ± {p['win_rate_se']:.3f}")
        print(f"shape along the run: {r['checkpoint_shape']}")
    print(f"total wall {results['total']['wall_s']:.0f} s; load average {results['machine']['load_average_start']}"
          f" -> {results['machine']['load_average_end']}; wrote {path}")
    return results


# --- several seeds (--seeds) -------------------------------------------------------------------

SEED_METRICS = ("win_rate", "kl", "rm_pairwise", "gain", "tie_share", "direct_win_rate", "wall_s")


def plot_checkpoints(results: dict, out: Path) -> str:
    """``overoptimisation.png``: each beta's held-out checkpoints, win rate and RM score against √KL."""
    from training.rlhf.plots import SweepCurve, plot_overoptimisation

    curves = [
        SweepCurve(f"β={r['beta']:g}", [p["sqrt_kl"] for p in r["checkpoints"]],
                   [p["win_rate"] for p in r["checkpoints"]], [p["rm_score"] for p in r["checkpoints"]])
        for r in results["beta_sweep"] if r.get("checkpoints")
    ]
    return plot_overoptimisation(out / f"overoptimisation-seed-{results['settings']['seed']}.png", curves=curves)


def t_interval(values: Sequence[float], level: float = 0.95) -> dict:
    """Mean and the two-sided Student t interval over seeds (n - 1 degrees of freedom): the seeds are
    few, so a normal interval would be too narrow. With one value there is no interval (None)."""
    from scipy.stats import t

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"n": n, "mean": mean, "sd": None, "half_width": None, "low": None, "high": None}
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / n**0.5
    return {"n": n, "mean": mean, "sd": sd, "half_width": half, "low": mean - half, "high": mean + half}


def seed_row(seed: int, results: dict) -> dict:
    """One seed's headline figures from its results dict."""
    full = next(p for p in results["curve"] if p["labels"] == results["settings"]["labels"])
    return {
        "seed": seed,
        "win_rate": results["tuned"]["win_rate"],
        "kl": results["tuned"]["kl"],
        "rm_pairwise": full["pairwise_accuracy"],
        "gain": results["score_gain_ratio"],
        "tie_share": results["tuned"]["tie_share"],
        "direct_win_rate": results["direct"]["win_rate"],
        "wall_s": results["total"]["wall_s"],
        "pretrained_s": results["phases"].get("pretrain", {}).get("wall_s", 0.0),
        "base_bits_per_byte": results["pretrain"].get("valid/bits_per_byte"),
        "accepted": bool(results["acceptance"]["win_rate_ge_0.8"] and results["acceptance"]["kl_le_10"]),
        "load_average": [results["machine"]["load_average_start"], results["machine"]["load_average_end"]],
    }


def aggregate_seeds(rows: Sequence[dict], level: float = 0.95) -> dict:
    return {
        "interval": f"{level:.0%} two-sided Student t interval over seeds (n - 1 degrees of freedom)",
        "seeds": list(rows),
        "summary": {m: t_interval([r[m] for r in rows], level) for m in SEED_METRICS},
        "accepted_every_seed": all(r["accepted"] for r in rows),
        "failed_seeds": [r["seed"] for r in rows if not r["accepted"]],
    }


def finished_seed(settings: Settings, folder: Path) -> dict | None:
    """The results of a finished run in ``folder`` made with exactly these settings, else None."""
    path = folder / "results.json"
    if not path.is_file():
        return None
    done = json.loads(path.read_text())
    # Through JSON, as stored (tuples become lists): any other setting means another experiment.
    if done.get("settings") != json.loads(json.dumps(dataclasses.asdict(settings))) or "tuned" not in done:
        return None
    print(f"[bench] seed {settings.seed}: reusing the finished run {path}", flush=True)
    return done


def run_seeds(settings: Settings, out: Path, seeds: Sequence[int]) -> dict:
    """The full experiment once per seed (each under ``out/seed-N/``; each seed pretrains its own base,
    cached under ``out``), then the per-seed rows and mean ± interval in ``out/results.json``,
    rewritten after every seed so an interrupted run keeps what it finished. A seed whose folder
    already holds a finished run with the same settings is read, not rerun (so seeds can also be run
    as separate ``--seeds N`` processes and collected with ``--seeds 0,1,2`` after)."""
    rows: list[dict] = []
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    for seed in seeds:
        one = dataclasses.replace(settings, seed=seed)
        res = finished_seed(one, out / f"seed-{seed}")
        if res is None:
            res = run_experiment(one, out / f"seed-{seed}", base_root=out)
        rows.append(seed_row(seed, res))
        agg = {"started": started, "settings": {**dataclasses.asdict(settings), "seed": list(seeds)},
               **aggregate_seeds(rows), "complete": len(rows) == len(seeds)}
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(agg, indent=2))
    print_seeds(agg, out)
    return agg


def print_seeds(agg: dict, out: Path) -> None:
    print("\n=== mock sentiment over seeds ===")
    print("seed | win rate | KL    | RM pairwise | gain | ties | direct win | accepted | wall s (pretrain)")
    for r in agg["seeds"]:
        print(f"{r['seed']:>4} | {r['win_rate']:.3f}    | {r['kl']:5.2f} | {r['rm_pairwise']:.3f}       |"
              f" {r['gain']:.2f} | {r['tie_share']:.2f} | {r['direct_win_rate']:.3f}      | {str(r['accepted']):<8} |"
              f" {r['wall_s']:.0f} ({r['pretrained_s']:.0f})")
    for m in SEED_METRICS:
        s = agg["summary"][m]
        band = f"[{s['low']:.3f}, {s['high']:.3f}]" if s["half_width"] is not None else "(one seed: no interval)"
        print(f"{m}: mean {s['mean']:.3f}, 95% t interval {band}")
    print(f"win rate >= 0.80 at KL <= 10 on every seed: {agg['accepted_every_seed']}"
          + (f" (failed: seeds {agg['failed_seeds']})" if agg["failed_seeds"] else ""))
    print(f"wrote {out / 'results.json'} (per seed: {out}/seed-N/)")


# --- command line ------------------------------------------------------------------------------


def _list(parser: argparse.ArgumentParser, flag: str, text: str, kind: Callable, check: Callable, why: str) -> list:
    """A comma-separated list for ``flag``; a bad item is an argparse error naming the flag."""
    try:
        items = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        parser.error(f"{flag}: {text!r} is not a comma-separated list ({why})")
    if not items or not all(check(x) for x in items) or len(set(items)) != len(items):
        parser.error(f"{flag}: {text!r} must be distinct values, {why}")
    return items


def _grid_item(text: str) -> tuple[float, int]:
    lr, _, epochs = text.strip().partition(":")
    return float(lr), int(epochs or 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, help="labeled comparisons for the main round (default 5000)")
    parser.add_argument("--ppo-episodes", type=int, help="PPO episodes per run (default 3072)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2: the full run per seed, then mean"
                        " and 95%% t interval (out/results.json; each seed under out/seed-N/)")
    parser.add_argument("--corpus", default=DEFAULT_CORPUS, help="text file or folder (default: Debian fortunes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--quick", action="store_true", help="miniature run (about 1-2 minutes)")
    parser.add_argument("--curve-ppo", action="store_true", help="also PPO + win rate at each curve point")
    parser.add_argument("--rm-readout", choices=READOUTS, help="reward readout, 'last' (2019) or 'mean' (default)")
    parser.add_argument("--rm-lr", type=float, help="reward model learning rate (default: the shared settings')")
    parser.add_argument("--rm-epochs", type=int, help="reward model epochs (default: the shared settings')")
    parser.add_argument("--kl-coef", type=float, help="initial beta (default: the shared settings')")
    parser.add_argument("--kl-target", type=float, help="adaptive controller's target KL in nats, 0 = fixed beta"
                        " (default: the shared settings')")
    parser.add_argument("--kl-horizon", type=int, help="adaptive controller's horizon in episodes: beta moves by at"
                        " most 20%% x batch / horizon per update (default: the shared settings')")
    parser.add_argument("--label-bias", help="CHAR:WEIGHT: the labeler chooses on VADER + WEIGHT x the share of"
                        " CHAR in the response ('space' for ' '), a systematic error the truth (VADER) does not share")
    parser.add_argument("--rm-only", action="store_true", help="stop after the reward model: held-out accuracy"
                        " of each --rm-grid setting on all the labels (out/rm_only-seed-N.json)")
    parser.add_argument("--rm-grid", help="with --rm-only: LR:EPOCHS,... e.g. 6e-4:1,3e-4:2,6e-4:2"
                        " (default: the one setting in force)")
    parser.add_argument("--beta-sweep", help="comma-separated fixed betas, e.g. 0.3,0.1,0.03,0.01: one reward"
                        " model, PPO per beta, KL / RM score / true win rate each (out/beta_sweep-seed-N.json)")
    parser.add_argument("--checkpoint-every", type=int, help="with --beta-sweep: evaluate each run on held-out"
                        " queries every N PPO steps (win rate, KL, RM score along training; overoptimisation-seed-N.png)")
    parser.add_argument("--checkpoint-queries", type=int, help="held-out queries per checkpoint (default 512)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if sum(bool(x) for x in (args.seeds, args.rm_only, args.beta_sweep)) > 1:
        parser.error("--seeds, --rm-only and --beta-sweep are separate modes: give one")
    if args.rm_grid and not args.rm_only:
        parser.error("--rm-grid needs --rm-only")
    for flag, value in (("--checkpoint-every", args.checkpoint_every), ("--checkpoint-queries", args.checkpoint_queries)):
        if value is not None and not args.beta_sweep:
            parser.error(f"{flag} needs --beta-sweep")
    overrides = {"seed": args.seed, "corpus": args.corpus, "threads": args.threads, "curve_ppo": args.curve_ppo}
    for flag, key, value, ok in (
        ("--rm-readout", "rm_readout", args.rm_readout, lambda v: True),
        ("--labels", "labels", args.labels, lambda v: v > 0),
        ("--ppo-episodes", "ppo_episodes", args.ppo_episodes, lambda v: v > 0),
        ("--rm-lr", "rm_lr", args.rm_lr, lambda v: v > 0),
        ("--rm-epochs", "rm_epochs", args.rm_epochs, lambda v: v >= 1),
        ("--kl-coef", "kl_coef", args.kl_coef, lambda v: v >= 0),
        ("--kl-target", "kl_target", args.kl_target, lambda v: v >= 0),
        ("--kl-horizon", "kl_horizon", args.kl_horizon, lambda v: v >= 1),
        ("--checkpoint-every", "checkpoint_every", args.checkpoint_every, lambda v: v >= 1),
        ("--checkpoint-queries", "checkpoint_queries", args.checkpoint_queries, lambda v: v >= 2),
    ):
        if value is not None:
            if not ok(value):
                parser.error(f"{flag}: {value} is out of range")
            overrides[key] = value
    if args.label_bias:
        char, _, weight = args.label_bias.rpartition(":")
        char = " " if char == "space" else char
        try:
            overrides["label_bias_weight"] = float(weight)
        except ValueError:
            parser.error(f"--label-bias: {args.label_bias!r} is not CHAR:WEIGHT")
        if len(char) != 1:
            parser.error(f"--label-bias: {char!r} is not one character (or 'space')")
        overrides["label_bias_char"] = char
    settings = Settings.quick(**overrides) if args.quick else Settings(**overrides)
    if args.seeds:
        seeds = _list(parser, "--seeds", args.seeds, int, lambda v: v >= 0, "non-negative integers")
        run_seeds(settings, args.out, seeds)
    elif args.rm_only:
        grid = ([(settings.rm_lr, settings.rm_epochs)] if not args.rm_grid else _list(
            parser, "--rm-grid", args.rm_grid, _grid_item, lambda g: g[0] > 0 and g[1] >= 1,
            "each LR:EPOCHS with LR > 0 and EPOCHS >= 1"))
        run_rm_only(settings, args.out, grid)
    elif args.beta_sweep:
        betas = _list(parser, "--beta-sweep", args.beta_sweep, float, lambda v: v > 0, "each beta > 0")
        run_beta_sweep(settings, args.out, betas)
    else:
        run_experiment(settings, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
