"""The settings the mock-sentiment experiment shares between its two paths (no Django).

``bench/mock_sentiment.py`` runs it on the library alone; ``manage.py mock_sentiment``
(``training/services/experiment.py``) runs it through the product. Both extend this dataclass, so
a default changed here changes both (the README's tables say which settings each figure used).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pretrain imports torch: reading the settings should not
    from training.rlhf.pretrain import PretrainConfig

DEFAULT_CORPUS = "/usr/share/games/fortunes"


@dataclass(frozen=True)
class CopyStage:
    """One stage of the copy variant's base pretraining (each continues the one before).

    Documents: the corpus, plus each training post followed by ``"\nTL;DR: "`` and a summary
    (`tldr_share` of the posts): the post's first words with probability `extractive_share` (what
    the 2019 labelers rewarded), else another document's first words; plus `drill_share` × the
    corpus's size of copy drills (random corpus words, the cue, the same words again).
    """

    steps: int
    tldr_share: float
    extractive_share: float
    drill_share: float


# What made the 4x128 byte base copy after "TL;DR:" on 2 CPU cores (README, the copying lesson):
# TL;DR posts alone left the copy rate at 0.000 after 4,000 steps (the last 1,000 with every
# summary copying); with the drills it reached 0.005 after 3,000 more and 0.129 after 2,000 more.
# The drills make the induction step (find the earlier occurrence, continue it) worth learning,
# and it then carries over to the posts.
COPY_STAGES = (CopyStage(3000, 0.5, 0.5, 0.0), CopyStage(3000, 1.0, 0.5, 0.5), CopyStage(2000, 1.0, 0.8, 0.5))
SUMMARY_WORDS = (6, 12)  # words in a pretraining summary (and a drill's length: 5 to 14 words)


def tldr_documents(posts: Sequence[str], docs: Sequence[str], stage: CopyStage, seed: int, cue: str) -> list[str]:
    """The TL;DR documents of `stage`: `posts` are summarization queries (a passage, then `cue`)."""
    rng = random.Random(seed)
    out = []
    for query in posts:
        if rng.random() >= stage.tldr_share:
            continue
        source = query.removesuffix(cue) if rng.random() < stage.extractive_share else rng.choice(docs)
        out.append(f"{query} {' '.join(source.split()[:rng.randint(*SUMMARY_WORDS)])}")
    return out


def copy_drills(docs: Sequence[str], n: int, seed: int, cue: str) -> list[str]:
    """`n` documents "w1 … wk<cue> w1 … wk" of random corpus words: only copying predicts their second half."""
    vocab = sorted({w for d in docs for w in d.split() if w.isalpha() and len(w) < 10})
    if not vocab:
        return []
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = " ".join(rng.choice(vocab) for _ in range(rng.randint(5, 14)))
        out.append(f"{words}{cue} {words}")
    return out


def copy_stage_documents(docs: Sequence[str], posts: Sequence[str], stage: CopyStage, seed: int,
                         cue: str) -> list[str]:
    """All pretraining documents of one copy stage, shuffled."""
    out = list(docs) + tldr_documents(posts, docs, stage, seed, cue) + copy_drills(
        docs, int(len(docs) * stage.drill_share), seed + 1, cue)
    random.Random(seed + 2).shuffle(out)
    return out


@dataclass
class MockExperimentConfig:
    corpus: str = DEFAULT_CORPUS  # text file or folder (Debian's fortunes by default)
    seed: int = 0
    # base LM: a byte-level GPT-2 pretrained here
    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    pretrain_steps: int = 3000
    # 0: no wall-time guard. A guard ends pretraining early and moves the schedule with wall time
    # (pretrain.py: a time-limited run still anneals) when steps fall behind, so on a busy machine a seed's base,
    # and every figure after it, changed with the load (found 2026-12-05; README "Over seeds").
    pretrain_seconds: float = 0.0
    pretrain_lr: float = 3e-3
    pretrain_batch: int = 16
    block_size: int = 128
    # queries and responses
    query_bytes: int = 24  # prefix length before cutting back to a word boundary
    query_length: int = 32  # tokens kept (eos + prefix), left-padded
    response_length: int = 48  # bytes sampled per response
    temperature: float = 0.7  # sampling for labels, PPO and evaluation
    k: int = 4
    # labels
    labels: int = 5000
    curve: tuple[int, ...] = (500, 1000)  # smaller label counts for the curve (plus `labels`)
    valid_comparisons: int = 500  # held-out comparisons (held-out queries) for RM accuracy
    # reward model. "mean" readout: the head averaged over the response's tokens; the last token of this
    # small byte model cannot carry VADER's roughly additive word sentiment ("last" stayed at chance:
    # loss ln 4). Held-out pairwise accuracy on the product's 5,000 labels after one epoch: 0.604 at
    # lr 1e-4, 0.652 at 3e-4, 0.665 at 6e-4 (README).
    rm_readout: str = "mean"
    rm_lr: float = 6e-4
    rm_epochs: int = 1
    rm_batch: int = 32
    # PPO. The adaptive controller moves beta by at most 20% * 64/500 = 2.6% per update, so the initial
    # beta decides most of the final KL: with the lr 6e-4 reward model 0.1 ends near KL 20, 0.2 near
    # 10.3, 0.3 near 7.6 (README). Longer runs over-optimise the small reward model.
    ppo_episodes: int = 3072
    ppo_batch: int = 64
    ppo_minibatches: int = 2
    ppo_lr: float = 1e-4
    kl_coef: float = 0.3  # initial beta
    # nats per response; adaptive controller (0 = fixed kl_coef). 6 left the policies at KL 5.8-6.7 and win rates
    # 0.77-0.78; 8 overshot to 11.7 (seed 1); 7 gave 8.0-9.8 and 0.82-0.86 on seeds 0-2 (README "Over seeds").
    kl_target: float = 7.0
    # episodes. A faster controller (100) swung KL between 3 and 17 and back (seed 2): the policy answers beta late.
    kl_horizon: int = 500
    # evaluation
    eval_queries: int = 1024

    def pretrain_config(self, output_dir: Path | str | None, n_positions: int = 256) -> PretrainConfig:
        from training.rlhf.pretrain import PretrainConfig

        return PretrainConfig(
            output_dir=str(output_dir) if output_dir else None, n_layer=self.n_layer, n_embd=self.n_embd,
            n_head=self.n_head, n_positions=n_positions, block_size=self.block_size, batch_size=self.pretrain_batch,
            lr=self.pretrain_lr, max_steps=self.pretrain_steps, max_seconds=self.pretrain_seconds, eval_every=200,
            seed=self.seed, device="cpu")
